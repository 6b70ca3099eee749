"""The daily pipeline: find inputs -> ingest -> predict -> validate -> store, in one function.

``run_daily_forecast`` is the whole job for one target date; the CLI (``pm25 run``,
``pm25 backfill``), the scheduler and the API's re-run endpoint all call it. Every attempt is
a row of ``runs`` with its state, timings per stage, input provenance, model, field statistics
and, on failure, the stage and a clear message. The field and the "published" pointer are
written in one transaction, so a failed or killed run never leaves anything half-done and the
last good forecast stays published.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from models.artifact import ModelArtifactError
from service.errors import DomainCoverageError, InputFileError, MissingInputError
from service.forecast.check import ForecastValidationError, validate_forecast
from service.forecast.model import Forecaster, load_forecaster
from service.forecast.tensor import InputPaths, ModelInputs, assemble_inputs, find_input_paths
from service.grid import Grid
from service.ingest.common import warnings_once
from service.settings import Settings
from service.storage import repository as repo
from service.storage.db import transaction
from service.storage.tables import Run, RunStatus

log = logging.getLogger(__name__)
F32 = npt.NDArray[np.float32]


class InputsIncompleteError(Exception):
    """Inputs are missing or still being written; the run waits."""


@dataclass
class Outcome:
    """What happened to one call of :func:`run_daily_forecast`."""

    run_id: int
    date: dt.date
    status: RunStatus
    fallback: bool = False
    message: str = ""
    timings: dict[str, float] = field(default_factory=dict)


def find_inputs(date: dt.date, settings: Settings) -> InputPaths:
    """The CMAQ and WRF files for ``date``, once present and settled; resolved once per run.

    Raises
    ------
    InputsIncompleteError
        A file is missing, or was modified less than ``input_settle_seconds`` ago (still
        being written by a producer that does not rename atomically).
    """
    try:
        paths = find_input_paths(date, settings)
    except MissingInputError as exc:
        raise InputsIncompleteError(str(exc)) from None
    newest, age = newest_input(paths)
    if age < settings.input_settle_seconds:
        raise InputsIncompleteError(
            f"{newest}: modified {age:.0f} s ago, still settling "
            f"({settings.input_settle_seconds} s)"
        )
    return paths


def newest_input(paths: InputPaths) -> tuple[Path, float]:
    """The most recently modified input file and its age in seconds (the files settle once
    the newest one is older than ``input_settle_seconds``)."""
    mtime, newest = max((p.stat().st_mtime, p) for p in paths.all())
    return newest, time.time() - mtime


def _open_attempt(sessions: sessionmaker[Session], date: dt.date, trigger: str) -> int:
    """Reuse the date's open waiting attempt, or open a new one (and hold its lease)."""
    for tries in range(3):
        try:
            with transaction(sessions) as s:
                runs = repo.runs_for_date(s, date)
                if runs and runs[-1].status in (RunStatus.WAITING, RunStatus.PENDING):
                    run = runs[-1]
                    run.status = RunStatus.RUNNING
                else:
                    run = repo.new_run(s, date, trigger)
                run.worker = repo.worker_id()
                run.started_at = run.heartbeat_at = repo.now()
                return run.id
        except IntegrityError:  # another worker took the same attempt number: count again
            if tries == 2:
                raise
    raise AssertionError("unreachable")


def public_message(exc: BaseException) -> str:
    """What a run's row (served by the API) may say about a failure: one short line.

    The service's own errors already name the file and the problem. Anything else is
    summarised by its kind; database errors never show their SQL or parameters, and no
    message carries a traceback (those go to the log).
    """
    if isinstance(exc, InputFileError | ForecastValidationError | ModelArtifactError):
        return str(exc)
    if isinstance(exc, SQLAlchemyError):
        return f"database error ({type(exc).__name__}); the details are in the worker's log"
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:300]}"


def _finish(sessions: sessionmaker[Session], run_id: int, **changes: Any) -> None:
    with transaction(sessions) as s:
        run = s.get(Run, run_id)
        assert run is not None
        for key, value in changes.items():
            setattr(run, key, value)
        if changes.get("status") in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.LATE):
            run.finished_at = repo.now()


def _wide_tensor(
    date: dt.date,
    settings: Settings,
    grid: Grid,
    paths: InputPaths,
    margin: int,
    grid_tensor: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.float32], str | None]:
    """The inputs on the wider window a model with an input ``margin`` reads, and a note.

    Where the files' grids do not reach that far (:class:`DomainCoverageError`), the result
    is ``grid_tensor`` (the model then repeats its edges) with a note saying so, for the
    run's record. Any other problem in the margin's cells (NaN, BADVAL3, implausible values)
    is raised, and fails the run as it would inside the grid.

    Raises
    ------
    InputFileError
        A problem other than coverage, naming the file and the problem.
    """
    try:
        wide = assemble_inputs(date, settings, Grid(grid.spec.widened(margin)), paths=paths)
    except DomainCoverageError as exc:
        note = (
            f"the inputs do not cover the model's margin of {margin} cells "
            f"({public_message(exc)}); its edges were repeated instead"
        )
        log.warning("inputs for %s: %s", date, note)
        return grid_tensor, note
    return wide.tensor, None


def run_daily_forecast(
    date: dt.date,
    *,
    settings: Settings,
    sessions: sessionmaker[Session],
    forecaster: Callable[[], Forecaster] | None = None,
    trigger: str = "manual",
    grid: Grid | None = None,
) -> Outcome:
    """Produce, validate and publish the forecast for target date ``date`` (KST).

    Idempotent: a re-run opens a new attempt; success replaces the published field
    atomically; failure leaves the previous publication in place.
    """
    with warnings_once():  # a margin model's window rereads the files: warn about them once
        return _run(date, settings, sessions, forecaster, trigger, grid)


def _run(
    date: dt.date,
    settings: Settings,
    sessions: sessionmaker[Session],
    forecaster: Callable[[], Forecaster] | None,
    trigger: str,
    grid: Grid | None,
) -> Outcome:
    """:func:`run_daily_forecast`'s work."""
    grid = grid or Grid(settings.grid)
    forecaster = forecaster or (lambda: load_forecaster(str(settings.model_path), grid.spec))
    run_id = _open_attempt(sessions, date, trigger)
    timings: dict[str, float] = {}
    stage = "find_inputs"
    inputs: ModelInputs | None = None
    notes: list[str] = []  # degradations of a run that still publishes, for its record

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        nonlocal stage
        stage = name
        with transaction(sessions) as s:  # renew the lease: the worker is alive, at ``name``
            repo.renew_lease(s, run_id)
            run = s.get(Run, run_id)
            if run is not None:
                run.stage = name
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            timings[name] = round(time.perf_counter() - t0, 4)

    try:
        paths = timed("find_inputs", lambda: find_inputs(date, settings))
        inputs = timed("ingest", lambda: assemble_inputs(date, settings, grid, paths=paths))
        model = timed("load_model", forecaster)
        tensor = inputs.tensor
        if model.card.margin:
            tensor, note = timed(
                "ingest_margin",
                lambda: _wide_tensor(date, settings, grid, paths, model.card.margin, inputs.tensor),
            )
            notes.extend([note] if note else [])
        pm25 = timed("predict", lambda: model.predict(tensor))
        stats = timed("validate", lambda: validate_forecast(pm25, grid))
        note = "; ".join(notes) or None
        timed(
            "store",
            lambda: _store(sessions, run_id, inputs, pm25, stats, timings, model, note=note),
        )
        _finish(sessions, run_id, timings=dict(timings))  # add the store's own duration
        log.info("forecast for %s published (run %d)", date, run_id)
        return Outcome(run_id, date, RunStatus.SUCCEEDED, message=note or "", timings=timings)
    except InputsIncompleteError as exc:
        _finish(
            sessions, run_id, status=RunStatus.WAITING, stage=stage, error=str(exc), timings=timings
        )
        return Outcome(run_id, date, RunStatus.WAITING, message=str(exc), timings=timings)
    except Exception as exc:  # every failure is recorded; the previous forecast stays published
        expected = isinstance(exc, InputFileError | ForecastValidationError | ModelArtifactError)
        message = public_message(exc)
        if expected:  # a clear message names the file and the problem; no traceback needed
            log.error("forecast for %s failed at %s: %s", date, stage, message)
        else:
            log.exception("forecast for %s failed at %s", date, stage)
        model_forecast = _published_model_run(sessions, date)
        # A bad input file (in the margin's cells, read after the grid's) is no model failure:
        # CMAQ's own field from the same files is no better, so the run fails.
        fallback = not isinstance(exc, InputFileError) and stage != "store"
        if inputs is not None and settings.cmaq_fallback and fallback:
            if model_forecast is not None:
                # A fallback is for dates with nothing better: never over a model forecast.
                message += (
                    f"; the published model forecast (run {model_forecast}) stays, no CMAQ fallback"
                )
            else:
                try:
                    stats = validate_forecast(inputs.cmaq_pm25, grid)
                    _store(
                        sessions,
                        run_id,
                        inputs,
                        inputs.cmaq_pm25,
                        stats,
                        timings,
                        None,
                        note="; ".join([f"model failed at {stage}: {message}", *notes]),
                    )
                    log.warning("published CMAQ's own PM2.5 for %s as a fallback", date)
                    return Outcome(
                        run_id,
                        date,
                        RunStatus.SUCCEEDED,
                        fallback=True,
                        message=message,
                        timings=timings,
                    )
                except Exception as fallback_exc:
                    log.exception("the CMAQ fallback for %s failed too", date)
                    message += f"; CMAQ fallback also failed: {public_message(fallback_exc)}"
        _finish(
            sessions,
            run_id,
            status=RunStatus.FAILED,
            stage=stage,
            error=message,
            timings=timings,
            inputs={"files": [f.as_dict() for f in inputs.files]} if inputs else {},
        )
        return Outcome(run_id, date, RunStatus.FAILED, message=message, timings=timings)


def _published_model_run(sessions: sessionmaker[Session], date: dt.date) -> int | None:
    """The id of the date's published run if it is a model forecast (not a CMAQ fallback)."""
    try:
        with sessions() as s:
            run = repo.published_run(s, date)
            return run.id if run is not None and not run.fallback else None
    except SQLAlchemyError:
        return None


def _store(
    sessions: sessionmaker[Session],
    run_id: int,
    inputs: ModelInputs,
    pm25: F32,
    stats: dict[str, Any],
    timings: dict[str, float],
    model: Forecaster | None,
    note: str | None = None,
) -> None:
    """Write the field, the run's metadata and the publication in one transaction.

    ``note`` says how a published run was degraded (a CMAQ fallback, a model margin filled
    by repeated edges); it is kept in the run's ``error``, which the API's run record shows.
    """
    files = [f.as_dict() for f in inputs.files]
    cmaq_init = min(
        (f.init_time for f in inputs.files if f.kind == "cmaq" and f.init_time), default=None
    )
    wrf_init = min(
        (f.init_time for f in inputs.files if f.kind == "wrf" and f.init_time), default=None
    )
    with transaction(sessions) as s:
        run = s.get(Run, run_id)
        assert run is not None
        if model is not None:
            record = repo.register_model(s, asdict(model.card), model.card.artifact_sha256)
            run.model_id = record.id
        run.fallback = model is None
        run.inputs = {"files": files}
        run.stats = stats
        run.cmaq_init = cmaq_init
        run.wrf_init = wrf_init
        run.timings = dict(timings)
        run.status = RunStatus.SUCCEEDED
        run.stage = None
        run.error = note
        run.finished_at = repo.now()
        repo.publish(s, run, np.asarray(pm25, np.float32))


def mark_late(sessions: sessionmaker[Session], date: dt.date, reason: str) -> int | None:
    """Mark the open (waiting) attempt of ``date`` as late; return its id."""
    with transaction(sessions) as s:
        runs = repo.runs_for_date(s, date)
        if runs and runs[-1].status in (RunStatus.WAITING, RunStatus.PENDING):
            runs[-1].status = RunStatus.LATE
            runs[-1].error = reason
            runs[-1].finished_at = repo.now()
            return runs[-1].id
    return None
