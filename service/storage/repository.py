"""Repository functions: every database read and write of the service, ``session`` passed in."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from service.storage.db import transaction
from service.storage.tables import (
    Heartbeat,
    ModelRecord,
    Publication,
    Run,
    RunField,
    RunStatus,
)
from service.timeaxis import kst_iso

F32 = npt.NDArray[np.float32]
log = logging.getLogger(__name__)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def encode_field(field: F32) -> bytes:
    """Compress a float32 field (little-endian) for storage."""
    return zlib.compress(np.ascontiguousarray(field, "<f4").tobytes(), 6)


def decode_field(row: RunField) -> F32:
    """The stored field as a read-only ``(hours, rows, cols)`` float32 array."""
    arr = np.frombuffer(zlib.decompress(row.data), "<f4").reshape(row.hours, row.nrows, row.ncols)
    return arr


def register_model(session: Session, card: dict[str, Any], sha256: str) -> ModelRecord:
    """The row of a model artifact, created the first time it is seen."""
    row = session.scalar(select(ModelRecord).where(ModelRecord.sha256 == sha256))
    if row is None:
        row = ModelRecord(
            name=card["name"],
            version=card["version"],
            case=card["case"],
            sha256=sha256,
            synthetic=bool(card.get("synthetic", False)),
            card=card,
            registered_at=now(),
        )
        session.add(row)
        session.flush()
    return row


def new_run(session: Session, date: dt.date, trigger: str) -> Run:
    """Open a new attempt at ``date`` (attempt numbers count up per date)."""
    last = session.scalar(select(func.max(Run.attempt)).where(Run.target_date == date)) or 0
    run = Run(
        target_date=date,
        attempt=last + 1,
        status=RunStatus.RUNNING,
        trigger=trigger,
        created_at=now(),
        started_at=now(),
        timings={},
        inputs={},
        stats={},
    )
    session.add(run)
    session.flush()
    return run


def publish(session: Session, run: Run, field: F32) -> None:
    """Store a run's field and make it the published forecast of its date, atomically."""
    session.add(
        RunField(
            run_id=run.id,
            hours=field.shape[0],
            nrows=field.shape[1],
            ncols=field.shape[2],
            data=encode_field(field),
        )
    )
    # Two first publications of one date may race (two workers, PostgreSQL): create the row
    # with INSERT .. ON CONFLICT DO NOTHING, then lock it; the later publication wins.
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(Publication)
        .values(target_date=run.target_date, run_id=run.id, published_at=now())
        .on_conflict_do_nothing(index_elements=["target_date"])
    )
    pub = session.scalars(
        select(Publication)
        .where(Publication.target_date == run.target_date)
        .with_for_update(of=Publication)  # not the joined run
        .execution_options(populate_existing=True)
    ).one()
    if pub.run_id != run.id:
        # The superseded field goes; its run's metadata stays in the history of attempts.
        old = session.get(RunField, pub.run_id)
        if old is not None:
            session.delete(old)
        pub.run_id = run.id
        pub.published_at = now()


def published_run(session: Session, date: dt.date) -> Run | None:
    """The run whose forecast is served for ``date``."""
    pub = session.get(Publication, date)
    return pub.run if pub else None


def latest_published(session: Session) -> Run | None:
    """The published run of the latest target date."""
    pub = session.scalar(select(Publication).order_by(Publication.target_date.desc()).limit(1))
    return pub.run if pub else None


def run_field(session: Session, run_id: int) -> F32 | None:
    row = session.get(RunField, run_id)
    return decode_field(row) if row else None


def runs_for_date(session: Session, date: dt.date) -> list[Run]:
    return list(session.scalars(select(Run).where(Run.target_date == date).order_by(Run.attempt)))


def list_runs(
    session: Session,
    *,
    status: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Run], int]:
    """Runs newest first, filtered; with the total count before paging."""
    q = select(Run)
    if status:
        q = q.where(Run.status == RunStatus(status))
    if start:
        q = q.where(Run.target_date >= start)
    if end:
        q = q.where(Run.target_date <= end)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(
        q.order_by(Run.target_date.desc(), Run.attempt.desc()).limit(limit).offset(offset)
    )
    return list(rows), total


def pending_dates(session: Session) -> list[dt.date]:
    """Dates whose newest attempt was queued (by the API) and not yet started."""
    rows = session.scalars(select(Run).where(Run.status == RunStatus.PENDING))
    return sorted({r.target_date for r in rows})


def beat(session: Session, component: str, info: dict[str, Any]) -> None:
    """Record that ``component`` is alive."""
    row = session.get(Heartbeat, component)
    if row is None:
        session.add(Heartbeat(component=component, seen_at=now(), info=info))
    else:
        row.seen_at = now()
        row.info = info


def last_beat(session: Session, component: str) -> Heartbeat | None:
    return session.get(Heartbeat, component)


def renew_lease(session: Session, run_id: int) -> None:
    """Record that the worker of a running attempt is still at work."""
    run = session.get(Run, run_id)
    if run is not None:
        run.heartbeat_at = now()


def worker_id() -> str:
    """This process as a run's worker: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _worker_is_gone(worker: str) -> bool:
    """Whether ``host:pid`` names a process of this host that no longer exists."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def running_ids(session: Session) -> list[int]:
    """The ids of attempts in the ``running`` state."""
    return list(session.scalars(select(Run.id).where(Run.status == RunStatus.RUNNING)))


def mark_interrupted(session: Session, lease: dt.timedelta) -> list[int]:
    """Mark running attempts whose worker is gone as failed (interrupted); return their ids.

    An attempt is interrupted when its worker is a process of this host that no longer exists
    (killed, crashed), or when its lease (renewed at every stage) is older than ``lease``,
    which also covers workers on other hosts.
    """
    ids = []
    for run in session.scalars(select(Run).where(Run.status == RunStatus.RUNNING)):
        seen = run.heartbeat_at or run.started_at or run.created_at
        if _worker_is_gone(run.worker or "") or now() - seen > lease:
            run.status = RunStatus.FAILED
            run.stage = run.stage or "interrupted"
            run.error = (
                f"interrupted: worker {run.worker or '?'} stopped during {run.stage} "
                f"(last seen {kst_iso(seen)})"
            )
            run.finished_at = now()
            ids.append(run.id)
    return ids


def recover_interrupted(sessions: sessionmaker[Session], lease: dt.timedelta) -> int:
    """Mark attempts left running by a worker that is gone (killed, crashed) as interrupted;
    return how many.

    Every entry point calls it before it acts on or reports runs: ``pm25 run`` and
    ``backfill``, the scheduler at every tick, the API's status and metrics. It reads first
    and takes a write transaction only when some attempt is running, so the usual call costs
    one small query. See :func:`mark_interrupted`.
    """
    with sessions() as s:
        if not running_ids(s):
            return 0
    with transaction(sessions) as s:
        ids = mark_interrupted(s, lease)
    for run_id in ids:
        log.warning("run %d was interrupted: its worker is gone", run_id)
    return len(ids)
