"""The scheduler process (``pm25 scheduler``): tomorrow's forecast every day, without anyone.

APScheduler 3 in Asia/Seoul time. At the daily start time it begins tomorrow's run; every
``poll_seconds`` it retries a date that is waiting for inputs, until the publication deadline,
when the run is marked late. On start it catches up the days it missed. Only one scheduler
acts at a time: the leader holds a PostgreSQL advisory lock (or, on SQLite, a file lock);
others stand by and take over if the leader dies. Database outages are logged and retried at
the next tick; the process does not die of them.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.jobs import mark_late, run_daily_forecast
from service.settings import Settings
from service.storage import repository as repo
from service.storage.db import make_engine, redact, session_factory, transaction
from service.storage.tables import RunStatus
from service.timeaxis import KST, deadline_of, today_kst
from service.verification.job import Verifier, verify_due

log = logging.getLogger(__name__)
LOCK_KEY = 0x504D3235  # "PM25"
COMPONENT = "scheduler"


class LeaderLock:
    """Exactly one active scheduler per database.

    PostgreSQL: a session-level advisory lock held on a dedicated connection. SQLite: an OS
    file lock beside the database file. Both are released by the operating system or the
    server when the holder dies.
    """

    def __init__(self, settings: Settings) -> None:
        self.url = settings.database_url.get_secret_value()
        self._conn: Any = None
        self._file_lock: Any = None
        self._engine: Engine | None = None

    def try_acquire(self) -> bool:
        u = make_url(self.url)
        if u.get_backend_name() == "sqlite":
            from filelock import FileLock, Timeout

            path = Path(u.database or "pm25.sqlite").resolve()
            self._file_lock = self._file_lock or FileLock(str(path) + ".scheduler.lock")
            try:
                self._file_lock.acquire(timeout=0)
                return True
            except Timeout:
                return False
        if self._conn is None:
            self._engine = make_engine(self.url)
            self._conn = self._engine.connect()
        got = bool(
            self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
        )
        self._conn.commit()
        return got

    def release(self) -> None:
        if self._file_lock is not None and self._file_lock.is_locked:
            self._file_lock.release()
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                self._conn.close()
            except SQLAlchemyError:
                pass
            self._conn = None
        if self._engine is not None:
            self._engine.dispose()


class Scheduler:
    """The daily forecast loop for one settings object (see the module docstring)."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session] | None = None) -> None:
        self.settings = settings
        self.sessions = sessions or session_factory(
            make_engine(settings.database_url.get_secret_value())
        )
        self.start_time = settings.schedule_time_kst
        self.lock = LeaderLock(settings)
        self.leader = False
        self._busy = threading.Lock()
        self._verifier: Verifier | None = None  # made at the first verification

    # -- the decisions, testable without a clock ------------------------------------------------

    def due_dates(self, now: dt.datetime) -> list[dt.date]:
        """Target dates that should have a forecast by ``now`` (aware), oldest first.

        Tomorrow's run is due once today's start time has passed; the catch-up window covers
        the ``catchup_days`` before that.
        """
        local = now.astimezone(KST)
        last = local.date() + dt.timedelta(days=1)
        if local.time() < self.start_time:
            last -= dt.timedelta(days=1)
        first = last - dt.timedelta(days=self.settings.catchup_days)
        return [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]

    def deadline_of(self, date: dt.date) -> dt.datetime:
        """When the forecast of ``date`` must be published: D-1 at the deadline time, KST."""
        return deadline_of(date, self.settings.deadline_time_kst)

    def tick(self, now: dt.datetime | None = None) -> list[str]:
        """One pass: run or retry every due date that has no success yet. Returns a log."""
        now = now or dt.datetime.now(dt.UTC)
        done: list[str] = []
        if not self._busy.acquire(blocking=False):
            return ["busy"]
        try:
            if not self.leader:
                self.leader = self.lock.try_acquire()
                self.heartbeat()
                if not self.leader:
                    return ["standby"]
                log.info("this scheduler is the leader")
            repo.recover_interrupted(self.sessions, self.settings.run_lease)
            done.extend(self._run_queued())
            for date in self.due_dates(now):
                with self.sessions() as s:
                    runs = repo.runs_for_date(s, date)
                latest = runs[-1].status if runs else None
                if any(r.status == RunStatus.SUCCEEDED for r in runs) or latest in (
                    RunStatus.FAILED,
                    RunStatus.LATE,
                    RunStatus.RUNNING,
                ):
                    continue
                if now > self.deadline_of(date) and latest == RunStatus.WAITING:
                    mark_late(
                        self.sessions,
                        date,
                        f"inputs incomplete at the deadline "
                        f"{self.deadline_of(date):%Y-%m-%d %H:%M} KST: {runs[-1].error}",
                    )
                    done.append(f"{date}: late")
                    continue
                outcome = run_daily_forecast(
                    date, settings=self.settings, sessions=self.sessions, trigger="scheduler"
                )
                done.append(f"{date}: {outcome.status.value}")
        except (OperationalError, SQLAlchemyError) as exc:
            log.error(
                "database unavailable, will retry at the next tick: %s", exc.__class__.__name__
            )
            done.append("database unavailable")
        finally:
            self._busy.release()
        return done

    def run_queue(self) -> list[str]:
        """Run the re-runs queued through the API, if this scheduler leads (every few seconds).

        Lighter than :meth:`tick`: it looks only at the queue, so an admin's re-run starts
        within ``queue_poll_seconds`` instead of waiting for the next poll for inputs.
        """
        return self._as_leader(self._run_queued)

    def _as_leader(self, work: Callable[[], list[str]]) -> list[str]:
        """Do ``work`` if this scheduler leads and no other job of it is busy; a database
        outage is logged and left to the next call."""
        if not self.leader or not self._busy.acquire(blocking=False):
            return []
        try:
            return work()
        except SQLAlchemyError as exc:
            log.error("database unavailable, will retry: %s", exc.__class__.__name__)
            return ["database unavailable"]
        finally:
            self._busy.release()

    def _run_queued(self) -> list[str]:
        with self.sessions() as s:
            queued = repo.pending_dates(s)
        done = []
        for date in queued:  # re-runs asked for through the API
            outcome = run_daily_forecast(
                date, settings=self.settings, sessions=self.sessions, trigger="api"
            )
            done.append(f"{date}: {outcome.status.value} (queued)")
        return done

    # -- verification: score each past date once its analysis is in the inbox (issue 12) ------

    def verify_analyses(self, now: dt.datetime | None = None) -> list[str]:
        """Verify the published dates up to yesterday (KST) whose analysis has arrived and
        that were never verified or were re-published since, if this scheduler leads."""

        def verify() -> list[str]:
            self._verifier = self._verifier or Verifier(self.settings, self.sessions)
            done = verify_due(self._verifier, today_kst(now) - dt.timedelta(days=1))
            return [f"{v.date}: verified (run {v.run_id})" for v in done]

        return self._as_leader(verify)

    def heartbeat(self) -> None:
        try:
            with transaction(self.sessions) as s:
                repo.beat(
                    s,
                    COMPONENT,
                    {
                        "leader": self.leader,
                        "worker": repo.worker_id(),
                        "database": redact(self.settings.database_url),
                    },
                )
        except SQLAlchemyError as exc:
            log.warning("heartbeat failed: %s", exc.__class__.__name__)

    # -- the process --------------------------------------------------------------------------

    def run_forever(self) -> None:
        """Start APScheduler (blocking) with the daily, polling and heartbeat jobs."""
        from apscheduler.schedulers.blocking import BlockingScheduler
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        sched = BlockingScheduler(
            timezone=KST,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 6 * 3600},
        )
        sched.add_job(
            self.tick,
            CronTrigger(hour=self.start_time.hour, minute=self.start_time.minute, timezone=KST),
            id="daily",
            name="tomorrow's forecast",
        )
        sched.add_job(
            self.tick,
            IntervalTrigger(seconds=self.settings.poll_seconds),
            id="poll",
            name="poll for inputs",
            next_run_time=dt.datetime.now(KST),
        )
        sched.add_job(
            self.run_queue,
            IntervalTrigger(seconds=self.settings.queue_poll_seconds),
            id="queue",
            name="run queued re-runs",
        )
        sched.add_job(
            self.verify_analyses,
            IntervalTrigger(seconds=self.settings.poll_seconds),
            id="verify",
            name="verify past forecasts once their analysis is in",
        )
        sched.add_job(self.heartbeat, IntervalTrigger(seconds=30), id="heartbeat")
        log.info(
            "scheduler started: daily at %s KST, deadline %s KST, database %s",
            self.settings.schedule_time_kst.strftime("%H:%M"),
            self.settings.deadline_time_kst.strftime("%H:%M"),
            redact(self.settings.database_url),
        )
        try:
            sched.start()
        finally:
            self.lock.release()
