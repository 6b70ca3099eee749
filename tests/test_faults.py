"""Faults the pipeline must survive: SIGKILL mid-predict and mid-store, two schedulers at once,
the database going away. Real processes, a real database, a real (tiny) model."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.jobs import run_daily_forecast
from service.scheduler import Scheduler
from service.settings import GridSpec, Settings
from service.storage import repository as repo
from service.storage.db import make_engine, normalise_url, session_factory
from service.storage.tables import RunField, RunStatus
from service.timeaxis import KST as SEOUL
from service.twin.sample import write_sample_day

from .conftest import DAY

# 2024-01-08 19:00 KST: tomorrow (2024-01-09) is due; the deadline is 23:00 KST.
EVENING = dt.datetime(2024, 1, 8, 19, 0, tzinfo=SEOUL)

CHILD = textwrap.dedent(
    """
    import datetime as dt, sys, time
    from pathlib import Path
    from service.forecast.model import load_forecaster
    from service.jobs import run_daily_forecast
    from service.settings import Settings
    from service.storage.db import make_engine, session_factory

    settings = Settings()
    marker = Path(sys.argv[1])
    real = load_forecaster(str(settings.model_path), settings.grid)

    class Slow:
        card, path = real.card, real.path
        def predict(self, tensor):
            out = real.predict(tensor)
            marker.write_text("predicting")
            time.sleep(float(sys.argv[2]))
            return out

    sessions = session_factory(make_engine(settings.database_url.get_secret_value()))
    run_daily_forecast(dt.date(2024, 1, 9), settings=settings, sessions=sessions,
                       forecaster=lambda: Slow())
    """
)


@pytest.fixture
def setup(tmp_path: Path, db_url: str, tiny_model: Path):  # type: ignore[no-untyped-def]
    inbox = tmp_path / "inbox"
    write_sample_day(inbox, DAY, GridSpec())
    env = {
        **os.environ,
        "PM25_DATABASE_URL": db_url,
        "PM25_INBOX": str(inbox),
        "PM25_MODEL_PATH": str(tiny_model),
        "PM25_INPUT_SETTLE_SECONDS": "0",
        "PM25_CATCHUP_DAYS": "0",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    settings = Settings(
        inbox=inbox,
        database_url=db_url,
        model_path=tiny_model,
        input_settle_seconds=0,
        catchup_days=0,
    )
    engine = make_engine(db_url)
    yield settings, session_factory(engine), env, tmp_path
    engine.dispose()


def _start_child(env: dict[str, str], marker: Path, sleep: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(marker), str(sleep)],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    end = time.time() + timeout
    while not path.exists():
        if time.time() > end:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.1)


def _assert_one_clean_success(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions() as s:
        runs = repo.runs_for_date(s, DAY)
        succeeded = [r for r in runs if r.status == RunStatus.SUCCEEDED]
        assert len(succeeded) == 1
        assert s.query(RunField).count() == 1
        assert s.get(RunField, succeeded[0].id) is not None
        assert repo.published_run(s, DAY).id == succeeded[0].id  # type: ignore[union-attr]


@pytest.mark.slow  # child processes that load TensorFlow
def test_sigkill_while_predicting_leaves_nothing_half_done(setup) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, env, tmp = setup
    child = _start_child(env, tmp / "marker", 60)
    _wait_for(tmp / "marker")
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    with sessions() as s:
        assert repo.runs_for_date(s, DAY)[-1].status == RunStatus.RUNNING
        assert s.query(RunField).count() == 0 and repo.published_run(s, DAY) is None
    assert repo.recover_interrupted(sessions, dt.timedelta(hours=2)) == 1
    out = run_daily_forecast(DAY, settings=settings, sessions=sessions)
    assert out.status == RunStatus.SUCCEEDED
    _assert_one_clean_success(sessions)
    with sessions() as s:
        first = repo.runs_for_date(s, DAY)[0]
        assert first.status == RunStatus.FAILED and "interrupted" in (first.error or "")


@pytest.mark.slow  # child processes that load TensorFlow
def test_sigkill_while_storing_leaves_nothing_half_done(setup, db_url: str) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, env, tmp = setup
    child = _start_child(env, tmp / "marker", 2)
    _wait_for(tmp / "marker")
    # Block the store: hold the table (PostgreSQL) or the write lock (SQLite) until the kill.
    blocker = create_engine(normalise_url(db_url))
    conn = blocker.connect()
    if make_url(db_url).get_backend_name() == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.execute(text("LOCK TABLE publications IN ACCESS EXCLUSIVE MODE"))
    time.sleep(5)  # the child has finished predicting and is waiting inside its store
    assert child.poll() is None
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    conn.rollback()
    conn.close()
    blocker.dispose()
    with sessions() as s:
        assert s.query(RunField).count() == 0 and repo.published_run(s, DAY) is None
    repo.recover_interrupted(sessions, dt.timedelta(hours=2))
    assert (
        run_daily_forecast(DAY, settings=settings, sessions=sessions).status == RunStatus.SUCCEEDED
    )
    _assert_one_clean_success(sessions)


SCHEDULER_CHILD = textwrap.dedent(
    """
    import datetime as dt, sys
    from service.scheduler import Scheduler
    from service.timeaxis import KST as SEOUL
    from service.settings import Settings
    print(Scheduler(Settings()).tick(dt.datetime(2024, 1, 8, 19, 0, tzinfo=SEOUL)), flush=True)
    """
)


@pytest.mark.slow  # child processes that load TensorFlow
def test_two_schedulers_started_at_once_run_each_date_once(setup) -> None:  # type: ignore[no-untyped-def]
    _, sessions, env, _ = setup
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCHEDULER_CHILD],
            env=env,
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[1],
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    with sessions() as s:
        runs = repo.runs_for_date(s, DAY)
    assert len(runs) == 1 and runs[0].status == RunStatus.SUCCEEDED, outputs
    assert any("2024-01-09: succeeded" in o for o in outputs)


def test_the_leader_lock_admits_one_scheduler(setup) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, _, _ = setup
    a, b = Scheduler(settings, sessions), Scheduler(settings, sessions)
    try:
        assert a.lock.try_acquire() is True
        assert b.lock.try_acquire() is False
        a.lock.release()
        assert b.lock.try_acquire() is True
    finally:
        a.lock.release()
        b.lock.release()


def test_scheduler_decisions(setup) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, _, _ = setup
    sched = Scheduler(settings.model_copy(update={"catchup_days": 2}), sessions)
    assert sched.due_dates(EVENING) == [dt.date(2024, 1, 7), dt.date(2024, 1, 8), DAY]
    morning = EVENING.replace(hour=9)
    assert sched.due_dates(morning)[-1] == dt.date(2024, 1, 8)
    assert sched.deadline_of(DAY) == dt.datetime(2024, 1, 8, 23, 0, tzinfo=SEOUL)


def test_waiting_inputs_turn_late_at_the_deadline(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, _, _ = setup
    (settings.inbox / "wrf").rename(tmp_path / "wrf-held")
    sched = Scheduler(settings, sessions)
    try:
        assert sched.tick(EVENING) == ["2024-01-09: waiting_for_inputs"]
        assert sched.tick(EVENING.replace(hour=23, minute=30)) == ["2024-01-09: late"]
        with sessions() as s:
            run = repo.runs_for_date(s, DAY)[-1]
            assert run.status == RunStatus.LATE and "deadline" in (run.error or "")
    finally:
        sched.lock.release()


def test_the_scheduler_catches_up_and_recovers_from_a_database_outage(setup, db_url: str) -> None:  # type: ignore[no-untyped-def]
    """During the outage every tick says so and writes nothing; afterwards the day is caught up.

    Why this test once accepted ``standby`` too: a scheduler that cannot take the leader lock
    stands by without touching the database, and on SQLite the lock is a file beside the
    database, which FileLock reports as held by another when it cannot create it (a missing or
    read-only folder). The old outage pointed the scheduler at a missing folder, so the answer
    hung on whether something created that folder first (make_engine does; filelock may).
    Here the lock works and the database does not, on both backends: PostgreSQL refuses the
    connection (its advisory lock lives there too, so the tick fails before any lock); the
    SQLite file is replaced by a folder, which SQLite cannot open (nor quietly replace by an
    empty database), while the lock file beside it can still be created.
    """
    settings, _, _, tmp = setup
    if make_url(db_url).get_backend_name() == "sqlite":
        db_file = Path(make_url(db_url).database or "")
        db_file.rename(tmp / "away.sqlite")
        db_file.mkdir()  # the database is gone; its folder is still there
        outage = settings
    else:
        port = make_url(db_url).port or 5432
        outage = Settings(
            **{**settings.model_dump(), "database_url": db_url.replace(f":{port}/", ":1/")}
        )
    down = Scheduler(outage, session_factory(make_engine(outage.database_url.get_secret_value())))
    try:
        assert down.tick(EVENING) == ["database unavailable"]
        assert down.tick(EVENING) == ["database unavailable"]  # and again: the process lives on
    finally:
        down.lock.release()
    if make_url(db_url).get_backend_name() == "sqlite":
        db_file.rmdir()
        (tmp / "away.sqlite").rename(db_file)
    up = Scheduler(settings, session_factory(make_engine(settings.database_url.get_secret_value())))
    try:
        with up.sessions() as s:
            assert repo.runs_for_date(s, DAY) == []  # the outage wrote nothing
        assert up.tick(EVENING) == ["2024-01-09: succeeded"]
        assert up.tick(EVENING) == []  # nothing left to do: each date runs once
    finally:
        up.lock.release()


def test_a_rerun_queued_through_the_api_is_run_by_the_scheduler(setup) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, _, _ = setup
    from service.storage.db import transaction

    with transaction(sessions) as s:
        run = repo.new_run(s, DAY, "api")
        run.status = RunStatus.PENDING
    sched = Scheduler(settings.model_copy(update={"catchup_days": 0}), sessions)
    try:
        assert sched.tick(EVENING) == ["2024-01-09: succeeded (queued)"]
    finally:
        sched.lock.release()
    with sessions() as s:
        runs = repo.runs_for_date(s, DAY)
        assert len(runs) == 1 and runs[0].trigger == "api" and runs[0].status == RunStatus.SUCCEEDED
