"""Operations routes: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from service import __version__
from service.api.deps import Problem, StateDep
from service.api.schemas import Health, Ready
from service.storage import repository as repo
from service.storage.tables import Run, RunStatus

router = APIRouter(tags=["operations"])


@router.get("/v1/health", summary="Liveness")
def health() -> Health:
    return Health(status="ok", version=__version__)


@router.get("/v1/ready", summary="Readiness: the database answers")
def ready(state: StateDep) -> Ready:
    try:
        with state.sessions() as s:
            s.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise Problem(
            503, "Not ready", f"the database is unreachable ({type(exc).__name__})"
        ) from None
    return Ready(status="ready")


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(state: StateDep) -> Response:
    m = state.metrics
    try:
        with state.sessions() as s:
            counts = dict(s.execute(select(Run.status, func.count()).group_by(Run.status)).all())
            latest = repo.latest_published(s)
        for st in RunStatus:
            m.runs.labels(st.value).set(counts.get(st, 0))
        if latest is not None and latest.finished_at is not None:
            age = (dt.datetime.now(dt.UTC) - latest.finished_at).total_seconds()
            m.forecast_age.set(age)
            m.latest_target.set(int(latest.target_date.strftime("%Y%m%d")))
    except SQLAlchemyError:
        pass  # metrics still answer when the database does not
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
