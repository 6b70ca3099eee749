"""Operations routes: liveness, readiness, Prometheus metrics.

Liveness and readiness answer in milliseconds under any load: both run on the event loop,
which the other routes keep free (see :mod:`service.api.forecasts`); readiness asks the
database (reachable, schema at the newest revision) in a thread of its own at most once a
second and shares the answer.
"""

from __future__ import annotations

import datetime as dt
import time

import anyio
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from service import __version__
from service.api.deps import SCHEMA_MESSAGE, AppState, Problem, StateDep
from service.api.schemas import Health, Ready
from service.storage import repository as repo
from service.storage.migrate import SchemaNotReadyError, check_schema
from service.storage.tables import Run, RunStatus

router = APIRouter(tags=["operations"])


#: How long a readiness answer is reused (a burst of probes costs one database query).
READY_CACHE_S = 1.0
#: How long readiness waits for the database before it says not ready.
READY_TIMEOUT_S = 5.0
HEALTH = Health(status="ok", version=__version__)


@router.get("/v1/health", summary="Liveness")
async def health() -> Health:
    """The process answers (nothing else is checked: no database, no disk)."""
    return HEALTH


@router.get("/v1/ready", summary="Readiness: the database answers, its schema is current")
async def ready(state: StateDep) -> Ready:
    """Ready when, within the last second, the database answered and its schema was at the
    newest revision (:func:`service.storage.migrate.check_schema`, as ``pm25 run`` checks)."""
    error = await readiness(state)
    if error is not None:
        raise Problem(503, "Not ready", error, headers={"Retry-After": "1"})
    return Ready(status="ready")


async def readiness(state: AppState) -> str | None:
    """None when the database answers with the newest schema, else why not (cached one
    second)."""
    if state.ready[0] > time.monotonic():
        return state.ready[1]
    async with state.ready_lock:
        if state.ready[0] > time.monotonic():  # another probe asked meanwhile
            return state.ready[1]
        error: str | None = "the database is unreachable (timed out)"
        with anyio.move_on_after(READY_TIMEOUT_S):
            # its own limiter: never queued behind busy routes in the default thread pool
            error = await anyio.to_thread.run_sync(
                _ping, state, limiter=state.ready_limiter, abandon_on_cancel=True
            )
        state.ready = (time.monotonic() + READY_CACHE_S, error)
        return error


def _ping(state: AppState) -> str | None:
    engine = state.sessions.kw["bind"]
    try:
        check_schema(engine, engine.url.render_as_string(hide_password=True))
    except SchemaNotReadyError:
        return SCHEMA_MESSAGE
    except SQLAlchemyError as exc:
        return f"the database is unreachable ({type(exc).__name__})"
    return None


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(state: StateDep) -> Response:
    m = state.metrics
    try:
        repo.recover_interrupted(
            state.sessions, state.settings.run_lease
        )  # no phantom running runs
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
