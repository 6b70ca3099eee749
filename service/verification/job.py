"""Verify one date: published field + the date's analysis + raw CMAQ + persistence -> stored scores.

The wiring of verification (as :mod:`service.jobs` wires a forecast): read the published run
and its field from the database, the analysis of the date and of the day before from the inbox
(``PM25_ANALYSIS_TEMPLATE``), CMAQ's own PM2.5 from the very files the run read (recorded in
``runs.inputs`` with their sha256), score them with :mod:`service.verification.scores`, and
store the scores in one transaction.

Raw CMAQ is re-read rather than stored at publication: only its PM2.5 variable is read (about
0.1 s), the forecast pipeline stays unchanged, and the sha256 recorded by the run proves that
the field scored is the one the model corrected. When those files are gone or have changed,
CMAQ is not scored for that date and the provenance says why.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session, sessionmaker

from service.errors import InputFileError, MissingInputError
from service.features import PM25
from service.forecast.tensor import load_truth
from service.grid import Grid
from service.ingest.cmaq import CMAQ_SPECIES, read_ioapi_day
from service.settings import Settings
from service.stations import Station, load_stations
from service.storage import repository as repo
from service.storage import verification as vrepo
from service.storage.db import transaction
from service.verification.scores import Cells, persistence, score_day

log = logging.getLogger(__name__)
F32 = npt.NDArray[np.float32]
PM25_SPECIES = tuple(s for s in CMAQ_SPECIES if s.feature == PM25)


class NotVerifiableError(Exception):
    """A date cannot be verified (yet): no published forecast, or no analysis."""

    def __init__(self, date: dt.date, reason: str, message: str) -> None:
        super().__init__(message)
        self.date = date
        self.reason = reason  # "no_forecast" or "no_analysis"


@dataclass
class Verified:
    """What :meth:`Verifier.verify` did for one date."""

    date: dt.date
    run_id: int
    fallback: bool
    scores: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def station_cells(grid: Grid, stations: tuple[Station, ...]) -> Cells:
    """Row and column indices of the cells of the stations inside the grid, one per station."""
    cells = [c for s in stations if (c := grid.cell_of(s.lat, s.lon)) is not None]
    return np.array([c[0] for c in cells], np.intp), np.array([c[1] for c in cells], np.intp)


class Verifier:
    """Verifies dates against one settings object; keeps the last few analyses read, so a
    range of dates reads each analysis once (it is the truth of its day and the persistence
    forecast of the next)."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        grid: Grid | None = None,
        stations: tuple[Station, ...] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.grid = grid or Grid(settings.grid)
        self.cells = station_cells(self.grid, stations if stations is not None else load_stations())
        self._analyses: dict[dt.date, tuple[F32, list[dict[str, Any]]]] = {}

    def analysis(self, date: dt.date) -> tuple[F32, list[dict[str, Any]]]:
        """The analysis of ``date`` ``(24, rows, cols)`` and its files (path, sha256).

        Raises
        ------
        MissingInputError
            No analysis file for ``date`` in the inbox.
        InputFileError
            The file is unreadable or wrong (a subclass names the file and the problem).
        """
        if date not in self._analyses:
            fields = load_truth(date, self.settings, self.grid)
            values = np.asarray(fields.data["pm25"].values, np.float32)
            files = [{"path": f.path, "sha256": f.sha256} for f in fields.files]
            self._analyses[date] = (values, files)
            for old in sorted(self._analyses)[:-3]:
                del self._analyses[old]
        return self._analyses[date]

    def analysis_present(self, date: dt.date) -> bool:
        """Whether the inbox holds an analysis file for ``date`` (no reading)."""
        pattern = self.settings.analysis_template.format(
            date=date, run_date=date - dt.timedelta(days=1)
        )
        return any(Path(self.settings.inbox).glob(pattern))

    def _cmaq(
        self, date: dt.date, files: list[dict[str, Any]]
    ) -> tuple[F32 | None, dict[str, Any]]:
        """CMAQ's PM2.5 from the files the run read, if they are still there, unchanged."""
        recorded = [f for f in files if f.get("kind") == "cmaq"]
        if not recorded:
            return None, {"note": "the run recorded no CMAQ files"}
        try:
            fields = read_ioapi_day(
                [f["path"] for f in recorded], date, self.grid, PM25_SPECIES, "cmaq"
            )
        except InputFileError as exc:
            return None, {"note": f"CMAQ not scored: {exc}"}
        now = {f.path: f.sha256 for f in fields.files}
        changed = [f["path"] for f in recorded if now.get(f["path"]) != f.get("sha256")]
        if changed:
            return None, {"note": f"CMAQ not scored: {changed[0]} changed since the run read it"}
        return (
            np.asarray(fields.data["pm25"].values, np.float32),
            {"files": [{"path": f["path"], "sha256": f["sha256"]} for f in recorded]},
        )

    def verify(self, date: dt.date) -> Verified:
        """Score the published forecast of ``date``, raw CMAQ and persistence; store the scores
        (replacing any earlier verification of the date).

        Raises
        ------
        NotVerifiableError
            No forecast is published for ``date``, or its analysis is not in the inbox.
        """
        t0 = time.perf_counter()
        with self.sessions() as s:
            run = repo.published_run(s, date)
            model = repo.run_field(s, run.id) if run is not None else None
            if run is None or model is None:
                raise NotVerifiableError(
                    date, "no_forecast", f"no forecast is published for {date}"
                )
            run_id, fallback, files = run.id, run.fallback, list(run.inputs.get("files", []))
        try:
            truth, truth_files = self.analysis(date)
        except MissingInputError as exc:
            raise NotVerifiableError(
                date, "no_analysis", f"no analysis for {date} yet: {exc}"
            ) from None
        notes: list[str] = []
        provenance: dict[str, dict[str, Any]] = {"model": {"analysis": truth_files}}
        try:
            previous, previous_files = self.analysis(date - dt.timedelta(days=1))
            provenance["persistence"] = {"analysis": truth_files, "forecast": previous_files}
        except InputFileError as exc:
            previous = None
            notes.append(
                f"persistence not scored: no analysis of {date - dt.timedelta(days=1)} ({exc})"
            )
        cmaq, cmaq_provenance = self._cmaq(date, files)
        if cmaq is None:
            notes.append(cmaq_provenance["note"])
        else:
            provenance["cmaq"] = {"analysis": truth_files, "forecast": cmaq_provenance["files"]}
        scores = score_day(
            truth,
            {
                "model": model,
                "cmaq": cmaq,
                "persistence": persistence(previous) if previous is not None else None,
            },
            self.cells,
        )
        for name, p in provenance.items():
            p["notes"] = notes
            if name == "model":
                p["fallback"] = fallback
        with transaction(self.sessions) as s:
            vrepo.save_day(s, date, run_id, scores, provenance)
        for note in notes:
            log.warning("verification of %s: %s", date, note)
        return Verified(date, run_id, fallback, scores, notes, time.perf_counter() - t0)


def verify_due(verifier: Verifier, until: dt.date) -> list[Verified]:
    """Verify every published date up to ``until`` that is unverified or was re-published,
    once its analysis is in the inbox (the scheduler calls this as it polls)."""
    with verifier.sessions() as s:
        dates = vrepo.dates_to_verify(s, until)
    done = []
    for date in dates:
        if not verifier.analysis_present(date):
            continue
        try:
            done.append(verifier.verify(date))
        except NotVerifiableError as exc:
            log.info("verification of %s skipped: %s", date, exc)
        except InputFileError as exc:
            log.error("verification of %s failed: %s", date, exc)
    return done


def describe(v: Verified) -> str:
    """One line for people: the day's RMSE of each source and the model's skill against CMAQ."""
    rmse = {k: f"{s['cells']['rmse']:.2f}" for k, s in v.scores.items()}
    sk = v.scores["model"].get("skill", {}).get("vs_cmaq")
    return (
        f"{v.date}: RMSE model {rmse['model']}"
        + (" (CMAQ fallback)" if v.fallback else "")
        + f", raw CMAQ {rmse.get('cmaq', '-')}, persistence {rmse.get('persistence', '-')}"
        + (f"; skill against CMAQ {sk:.3f}" if sk is not None else "")
    )


def verify_past_days(
    settings: Settings, sessions: sessionmaker[Session], dates: list[dt.date], today: dt.date
) -> list[str]:
    """Verify the ``dates`` before ``today`` that can be (``pm25 demo``); one line each."""
    verifier = Verifier(settings, sessions)
    lines = []
    for date in (d for d in dates if d < today):
        try:
            lines.append(describe(verifier.verify(date)))
        except (NotVerifiableError, InputFileError) as exc:
            lines.append(f"{date}: not verified: {exc}")
    return lines
