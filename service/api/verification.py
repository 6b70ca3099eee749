"""Verification routes: a date's scores, the daily series with rolling summaries, the drift flag
and the Prometheus gauges. They read stored scores only (``pm25 verify`` and the scheduler
compute them)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.api.deps import DatePath, IsoDate, Problem, StateDep, parse_date, shift_date
from service.api.schemas import ModelDrift, RunRef
from service.api.verification_schemas import (
    Skill,
    SourceScores,
    VerificationDay,
    VerificationPoint,
    VerificationSeries,
    Window,
)
from service.storage import repository as repo
from service.storage import verification as vrepo
from service.storage.tables import ModelRecord, Run, VerificationScore
from service.timeaxis import KST, valid_times_kst

router = APIRouter(prefix="/v1", tags=["verification"])
MAX_SPAN_DAYS = 731
DRIFT_DAYS = 14


@router.get("/verification/{date}", summary="Every score of a date's forecast")
def verification_of_date(date: DatePath, state: StateDep) -> VerificationDay:
    """The published forecast of ``date``, raw CMAQ and persistence against the analysis."""
    day = parse_date(date, state)
    with state.sessions() as s:
        run = repo.published_run(s, day)
        rows = vrepo.scores_of_date(s, day)
        if run is None:
            raise Problem(
                404, "No forecast", f"no forecast is published for {day}", reason="no_forecast"
            )
        if "model" not in rows:
            raise Problem(
                404,
                "No analysis",
                f"the forecast of {day} (run {run.id}) is not verified yet: its analysis has not "
                "arrived, or the scheduler has not scored it",
                reason="no_analysis",
            )
        model = rows["model"]
        synthetic = bool(run.model is not None and run.model.synthetic)
        return VerificationDay(
            target_date=day,
            run=RunRef.of(run),
            verified_run_id=model.run_id,
            current=model.run_id == run.id,
            computed_at=model.computed_at.astimezone(KST),
            hours=valid_times_kst(day),
            model=SourceScores.model_validate(model.scores),
            cmaq=SourceScores.model_validate(rows["cmaq"].scores) if "cmaq" in rows else None,
            persistence=SourceScores.model_validate(rows["persistence"].scores)
            if "persistence" in rows
            else None,
            skill=Skill(vs_cmaq=model.skill_vs_cmaq, vs_persistence=model.skill_vs_persistence),
            notes=list(model.provenance.get("notes", [])),
            synthetic=synthetic,
        )


def _by_date(rows: Sequence[VerificationScore]) -> dict[dt.date, dict[str, VerificationScore]]:
    out: dict[dt.date, dict[str, VerificationScore]] = {}
    for r in rows:
        out.setdefault(r.target_date, {})[r.source] = r
    return out


def window(rows: Sequence[VerificationScore], start: dt.date, end: dt.date) -> Window:
    """The model against raw CMAQ over the dates ``start..end`` where both were scored (RMSE
    from the pooled squared errors; skill 1 - MSE/MSE_cmaq)."""
    days = [
        d for d, r in _by_date(rows).items() if start <= d <= end and "model" in r and "cmaq" in r
    ]
    by = _by_date(rows)
    mse = {s: [by[d][s].rmse ** 2 for d in days] for s in ("model", "cmaq")}
    m = math.sqrt(sum(mse["model"]) / len(days)) if days else None
    c = math.sqrt(sum(mse["cmaq"]) / len(days)) if days else None
    return Window(
        start=start,
        end=end,
        days=len(days),
        model_rmse=m,
        cmaq_rmse=c,
        skill_vs_cmaq=1 - sum(mse["model"]) / sum(mse["cmaq"])
        if days and sum(mse["cmaq"])
        else None,
        days_worse_than_cmaq=sum(by[d]["model"].rmse > by[d]["cmaq"].rmse for d in days),
    )


def _point(d: dt.date, r: dict[str, VerificationScore]) -> VerificationPoint:
    model, cmaq, pers = r["model"], r.get("cmaq"), r.get("persistence")
    return VerificationPoint(
        date=d,
        run_id=model.run_id,
        model_rmse=model.rmse,
        cmaq_rmse=cmaq.rmse if cmaq else None,
        persistence_rmse=pers.rmse if pers else None,
        skill_vs_cmaq=model.skill_vs_cmaq,
        skill_vs_persistence=model.skill_vs_persistence,
        model_peak_rmse=model.peak_rmse,
        cmaq_peak_rmse=cmaq.peak_rmse if cmaq else None,
        worse_than_cmaq=model.rmse > cmaq.rmse if cmaq else None,
    )


@router.get("/verification", summary="The daily verification series and rolling summaries")
def verification_series(
    state: StateDep,
    from_: Annotated[IsoDate | None, Query(alias="from", description="YYYY-MM-DD")] = None,
    to: Annotated[IsoDate | None, Query(description="YYYY-MM-DD")] = None,
) -> VerificationSeries:
    """Each verified date of ``from..to`` (default: the 30 days up to the newest verified date),
    the model against raw CMAQ over the last 7 and 30 days up to ``to``, and the dates on which
    the model was worse than raw CMAQ.

    The scores carry ``synthetic``: whether a model trained on SYNTHETIC data made any of
    the forecasts listed."""
    with state.sessions() as s:
        if to is None:
            to = vrepo.latest_verified_date(s)
            if to is None:
                raise Problem(404, "No verification", "no forecast has been verified yet")
        month_start = shift_date(to, -29)  # 422, not an OverflowError, near date.min
        week_start = shift_date(to, -6)
        start = from_ or month_start
        if start > to:
            raise Problem(422, "Invalid range", f"from {start} is after to {to}")
        if (to - start).days >= MAX_SPAN_DAYS:
            raise Problem(422, "Invalid range", f"at most {MAX_SPAN_DAYS} days at once")
        rows = vrepo.scores_between(s, min(start, month_start), to, full=False)
        run_ids = {r.run_id for r in rows if r.source == "model" and start <= r.target_date}
        synthetic = bool(run_ids) and bool(
            s.scalar(
                select(func.count())
                .select_from(Run)
                .join(ModelRecord, Run.model_id == ModelRecord.id)
                .where(Run.id.in_(run_ids), ModelRecord.synthetic.is_(True))
            )
        )
    by = _by_date(rows)
    points = [_point(d, r) for d, r in sorted(by.items()) if start <= d and "model" in r]
    return VerificationSeries(
        start=start,
        end=to,
        days=points,
        last_7_days=window(rows, week_start, to),
        last_30_days=window(rows, month_start, to),
        days_worse_than_cmaq=[p.date for p in points if p.worse_than_cmaq],
        synthetic=synthetic,
    )


def model_drift(session: Session) -> ModelDrift | None:
    """The drift flag of ``/v1/status``: the model's RMSE over the 14 days up to the newest
    verified date against raw CMAQ's on the same days (None before any verification)."""
    end = vrepo.latest_verified_date(session)
    if end is None:
        return None
    start = end - dt.timedelta(days=DRIFT_DAYS - 1)
    w = window(vrepo.scores_between(session, start, end, full=False), start, end)
    if w.days == 0 or w.model_rmse is None or w.cmaq_rmse is None:
        return None
    worse = w.model_rmse > w.cmaq_rmse
    return ModelDrift(
        worse_than_cmaq=worse,
        window_start=start,
        window_end=end,
        days=w.days,
        model_rmse=w.model_rmse,
        cmaq_rmse=w.cmaq_rmse,
        message=(
            f"the model has drifted: its RMSE over {start}..{end} is {w.model_rmse:.2f} against "
            f"raw CMAQ's {w.cmaq_rmse:.2f} ug/m3"
            if worse
            else f"the model beats raw CMAQ over {start}..{end} ({w.model_rmse:.2f} against "
            f"{w.cmaq_rmse:.2f} ug/m3)"
        ),
    )


class VerificationCollector(Collector):
    """Prometheus gauges of the latest verification, read from the database at each scrape."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def describe(self) -> list[Any]:
        return []  # collected lazily: nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with self.sessions() as s:
                end = vrepo.latest_verified_date(s)
                if end is None:
                    return
                rows = vrepo.scores_between(s, end - dt.timedelta(days=29), end, full=False)
                drift = model_drift(s)
        except SQLAlchemyError:
            return  # metrics still answer when the database does not
        latest = _by_date(rows).get(end, {})
        date = GaugeMetricFamily(
            "pm25_verification_latest_target_date", "Newest verified target date (YYYYMMDD)"
        )
        date.add_metric([], int(end.strftime("%Y%m%d")))
        rmse = GaugeMetricFamily(
            "pm25_verification_rmse", "RMSE of the newest verified date (ug/m3)", labels=["source"]
        )
        for source, row in latest.items():
            rmse.add_metric([source], row.rmse)
        skill = GaugeMetricFamily(
            "pm25_verification_skill",
            "Model skill 1 - MSE/MSE_ref on the newest verified date",
            labels=["reference"],
        )
        if "model" in latest:
            for ref, value in (
                ("cmaq", latest["model"].skill_vs_cmaq),
                ("persistence", latest["model"].skill_vs_persistence),
            ):
                if value is not None:
                    skill.add_metric([ref], value)
        w30 = window(rows, end - dt.timedelta(days=29), end)
        skill30 = GaugeMetricFamily(
            "pm25_verification_skill_vs_cmaq_30d",
            "Model skill against raw CMAQ over the 30 days up to the newest verified date",
        )
        if w30.skill_vs_cmaq is not None:
            skill30.add_metric([], w30.skill_vs_cmaq)
        drifted = GaugeMetricFamily(
            "pm25_verification_model_worse_than_cmaq_14d",
            "1 when the model's 14-day RMSE is above raw CMAQ's",
        )
        if drift is not None:
            drifted.add_metric([], float(drift.worse_than_cmaq))
        yield from (date, rmse, skill, skill30, drifted)
