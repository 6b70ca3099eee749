"""What a failure may and may not replace; workers that vanish; races; the command line."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy.exc import IntegrityError

from service.cli import main
from service.jobs import public_message, run_daily_forecast
from service.scheduler import Scheduler
from service.settings import Settings
from service.storage import repository as repo
from service.storage.db import make_engine, session_factory, transaction
from service.storage.tables import RunField, RunStatus

from .conftest import DAY


def _published_bytes(sessions) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    with sessions() as s:
        run = repo.published_run(s, DAY)
        assert run is not None
        row = s.get(RunField, run.id)
        assert row is not None
        return run.id, bytes(row.data)


def _break_model(settings: Settings, folder: Path, how: str) -> Settings:
    model = folder / "broken" / "model.keras"
    model.parent.mkdir()
    shutil.copy(settings.model_path.parent / "card.json", model.parent / "card.json")
    data = settings.model_path.read_bytes()
    if how == "one byte":
        model.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    elif how == "junk":
        model.write_bytes(os.urandom(len(data)))
    # "missing": no model file at all
    return settings.model_copy(update={"model_path": model})


@pytest.mark.parametrize("how", ["one byte", "missing", "junk"])
def test_a_fallback_never_replaces_a_published_model_forecast(env, how: str) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, inbox = env
    assert run_daily_forecast(DAY, settings=settings, sessions=sessions).status.value == "succeeded"
    before = _published_bytes(sessions)
    broken = _break_model(settings, inbox.parent, how)
    out = run_daily_forecast(DAY, settings=broken, sessions=sessions)
    assert out.status == RunStatus.FAILED and not out.fallback
    assert "published model forecast" in out.message and "stays" in out.message
    assert _published_bytes(sessions) == before
    with sessions() as s:
        assert s.query(RunField).count() == 1


def test_a_fallback_still_serves_a_date_with_nothing_better(env) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, inbox = env
    broken = _break_model(settings, inbox.parent, "one byte")
    first = run_daily_forecast(DAY, settings=broken, sessions=sessions)
    assert first.status == RunStatus.SUCCEEDED and first.fallback
    again = run_daily_forecast(DAY, settings=broken, sessions=sessions)  # fallback over fallback
    assert again.status == RunStatus.SUCCEEDED and again.fallback
    fixed = run_daily_forecast(DAY, settings=settings, sessions=sessions)  # the model is back
    assert fixed.status == RunStatus.SUCCEEDED and not fixed.fallback
    with sessions() as s:
        assert repo.published_run(s, DAY).id == fixed.run_id  # type: ignore[union-attr]


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _running_attempt(sessions, worker: str, age: dt.timedelta) -> int:  # type: ignore[no-untyped-def]
    with transaction(sessions) as s:
        run = repo.new_run(s, DAY, "manual")
        run.worker = worker
        run.started_at = run.heartbeat_at = repo.now() - age
        run.stage = "predict"
        return run.id


def test_pm25_run_recognises_an_attempt_whose_worker_is_gone(env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, _ = env
    dead = _running_attempt(sessions, f"{socket.gethostname()}:{_dead_pid()}", dt.timedelta())
    elsewhere = _running_attempt(sessions, "other-host:1", dt.timedelta(hours=1))  # lease gone
    alive = _running_attempt(sessions, "other-host:2", dt.timedelta(seconds=5))  # still at work
    for key, value in {
        "PM25_DATABASE_URL": settings.database_url.get_secret_value(),
        "PM25_INBOX": str(settings.inbox),
        "PM25_MODEL_PATH": str(settings.model_path),
        "PM25_INPUT_SETTLE_SECONDS": "0",
    }.items():
        monkeypatch.setenv(key, value)
    from service.settings import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["run", "--date", "2024-01-10"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1  # no inputs for that day; the recovery happened first
    with sessions() as s:
        runs = {r.id: r for r in repo.runs_for_date(s, DAY)}
    for gone in (dead, elsewhere):
        assert runs[gone].status == RunStatus.FAILED
        assert runs[gone].error is not None and runs[gone].error.startswith("interrupted")
        assert "+09:00" in runs[gone].error
    assert runs[alive].status == RunStatus.RUNNING


def test_a_run_renews_its_lease_at_every_stage(env) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, _ = env
    t0 = repo.now()
    out = run_daily_forecast(DAY, settings=settings, sessions=sessions)
    with sessions() as s:
        run = repo.runs_for_date(s, DAY)[-1]
        assert run.id == out.run_id and run.heartbeat_at is not None and run.heartbeat_at >= t0
        assert run.worker == repo.worker_id()


def test_overlapping_first_publications_of_a_date_do_not_collide(env) -> None:  # type: ignore[no-untyped-def]
    _, sessions, _ = env
    with transaction(sessions) as s:
        ids = [repo.new_run(s, DAY, "manual").id for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def publish(run_id: int, value: float) -> None:
        try:
            barrier.wait(10)  # both transactions start together
            with transaction(sessions) as s:
                run = s.get(repo.Run, run_id)
                repo.publish(s, run, np.full((24, 68, 59), value, np.float32))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [
        threading.Thread(target=publish, args=(i, v)) for i, v in zip(ids, (1.0, 2.0), strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with sessions() as s:
        pub = repo.published_run(s, DAY)
        assert pub is not None and pub.id in ids
        assert s.query(RunField).count() == 1  # the superseded field went


def test_a_database_error_is_stored_as_a_short_message_without_sql() -> None:
    exc = IntegrityError(
        "INSERT INTO publications (target_date, run_id) VALUES (%(target_date)s, %(run_id)s)",
        {"target_date": "2024-01-09", "run_id": 7},
        Exception('duplicate key value violates unique constraint "publications_pkey"'),
    )
    message = public_message(exc)
    assert message.startswith("database error (IntegrityError)")
    assert "INSERT" not in message and "run_id" not in message and "\n" not in message


def _cli(env_vars: dict[str, str], *args: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    from service.settings import get_settings

    for key, value in env_vars.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, list(args))
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.output


def test_an_unmigrated_database_says_to_migrate(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    code, out = _cli(
        {"PM25_DATABASE_URL": f"sqlite:///{tmp_path}/new.sqlite"},
        "run", "--date", "2024-01-09",
        monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 1 and "pm25 migrate" in out and "Traceback" not in out
    assert len([line for line in out.splitlines() if line.startswith("Error")]) == 1


def test_an_unreachable_database_is_one_line_without_the_password(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    code, out = _cli(
        {"PM25_DATABASE_URL": "postgresql://pm25:s3cret-pw@127.0.0.1:1/pm25"},
        "backfill", "--start", "2024-01-09", "--end", "2024-01-09",
        monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 1 and "unreachable" in out and "Traceback" not in out
    assert "s3cret-pw" not in out and "***" in out
    assert len(out.strip().splitlines()) == 1


def test_invalid_settings_are_one_line(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    code, out = _cli({"PM25_SCHEDULE_TIME_KST": "25:99"}, "migrate", monkeypatch=monkeypatch)
    assert code == 1 and "PM25_SCHEDULE_TIME_KST" in out and "Traceback" not in out


@pytest.mark.parametrize(
    ("name", "template", "words"),
    [
        ("PM25_CMAQ_TEMPLATE", "cmaq/{date:%Y%m%d/*.nc", "not a valid format string"),
        ("PM25_CMAQ_TEMPLATE", "cmaq/{day}/*.nc", "names the field 'day'"),
        ("PM25_WRF_TEMPLATE", "wrf/{run_date:%Y%m%d}/{0}", "not a valid format string"),
        ("PM25_ANALYSIS_TEMPLATE", "/data/analysis/{date:%Y%m%d}/*.nc", "relative to the inbox"),
    ],
)
def test_a_malformed_path_template_is_one_line_before_any_run(  # type: ignore[no-untyped-def]
    tmp_path: Path, monkeypatch, name: str, template: str, words: str
) -> None:
    url = f"sqlite:///{tmp_path}/pm25.sqlite"
    code, out = _cli({name: template, "PM25_DATABASE_URL": url}, "run", "--date", "2024-01-09",
                     monkeypatch=monkeypatch)  # fmt: skip
    assert code == 1 and out.startswith(f"Error: invalid settings: {name}: ") and words in out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out
    assert not (tmp_path / "pm25.sqlite").exists()  # no database touched, no run opened


def test_debug_shows_the_traceback(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    code, _ = _cli(
        {"PM25_DATABASE_URL": f"sqlite:///{tmp_path}/new.sqlite"},
        "--debug", "run", "--date", "2024-01-09",
        monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 1  # the exception propagates (CliRunner catches it) instead of one line


def test_pm25_run_waits_for_just_delivered_files(env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings, _, _ = env
    vars_ = {
        "PM25_DATABASE_URL": settings.database_url.get_secret_value(),
        "PM25_INBOX": str(settings.inbox),
        "PM25_MODEL_PATH": str(settings.model_path),
        "PM25_INPUT_SETTLE_SECONDS": "3",
    }
    for f in settings.inbox.rglob("*"):
        if f.is_file():
            os.utime(f)  # delivered just now
    code, out = _cli(vars_, "run", "--no-wait", "--date", "2024-01-09", monkeypatch=monkeypatch)
    assert code == 1 and "waiting_for_inputs" in out and "settling" in out
    t0 = time.monotonic()
    code, out = _cli(vars_, "run", "--date", "2024-01-09", monkeypatch=monkeypatch)
    assert code == 0 and "succeeded" in out and "waiting" in out, out
    assert time.monotonic() - t0 >= 2.0


def test_a_queued_rerun_is_picked_up_by_the_queue_watch(env) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, _ = env
    with transaction(sessions) as s:
        run = repo.new_run(s, DAY, "api")
        run.status = RunStatus.PENDING
    sched = Scheduler(settings.model_copy(update={"catchup_days": 0}), sessions)
    try:
        assert sched.run_queue() == []  # not the leader yet: it does nothing
        sched.leader = sched.lock.try_acquire()
        assert sched.run_queue() == ["2024-01-09: succeeded (queued)"]
    finally:
        sched.lock.release()


API_TOKEN = "test-Admin-token-0123456789-abcdefgh"


@pytest.fixture
def api(tmp_path: Path, tiny_model: Path):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    from .conftest import published_database

    settings = published_database(tmp_path / "api", tiny_model, API_TOKEN)
    sessions = session_factory(make_engine(settings.database_url.get_secret_value()))
    with TestClient(create_app(settings)) as client:
        yield client, sessions


def test_the_api_status_and_metrics_recognise_a_vanished_worker(api) -> None:  # type: ignore[no-untyped-def]
    client, sessions = api
    for route in ("/v1/status", "/metrics"):
        gone = _running_attempt(sessions, f"{socket.gethostname()}:{_dead_pid()}", dt.timedelta())
        answer = client.get(route)
        assert answer.status_code == 200
        with sessions() as s:
            run = s.get(repo.Run, gone)
            assert run is not None and run.status == RunStatus.FAILED, route
            assert run.error is not None and run.error.startswith("interrupted")
        if route == "/metrics":
            assert 'pm25_runs{status="running"} 0.0' in answer.text  # no phantom running run


def test_a_rerun_answer_says_what_will_happen(api) -> None:  # type: ignore[no-untyped-def]
    client, sessions = api
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    ready = client.post("/v1/runs/2024-01-09", headers=auth)
    assert ready.status_code == 202
    body = ready.json()
    assert body["inputs_present"] is True and "1 CMAQ and 1 WRF" in body["inputs"]
    assert body["starts_within_s"] == 5 and body["watch"] == "/v1/runs/2024-01-09"
    assert "within about 5 s" in body["message"]
    missing = client.post("/v1/runs/2024-02-01", headers=auth).json()
    assert missing["inputs_present"] is False and "no file matches" in missing["inputs"]
    assert "inputs are missing" in missing["message"] and missing["status"] == "pending"
    with transaction(sessions) as s:  # the run went on to wait for its inputs ...
        waiting = repo.runs_for_date(s, dt.date(2024, 2, 1))[-1]
        waiting.status = RunStatus.WAITING
    again = client.post("/v1/runs/2024-02-01", headers=auth).json()
    assert again["run_id"] == missing["run_id"] and again["status"] == "pending"  # re-queued


def test_reruns_outside_the_date_window_are_refused_and_latest_ignores_queued_runs(api) -> None:  # type: ignore[no-untyped-def]
    from service.timeaxis import tomorrow_kst

    client, sessions = api
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    too_far = tomorrow_kst() + dt.timedelta(days=2)
    for date in ("0001-01-01", "1999-12-31", "9999-12-31", too_far.isoformat()):
        r = client.post(f"/v1/runs/{date}", headers=auth)
        assert r.status_code == 422, (date, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    with sessions() as s:  # nothing was written for them
        assert [r.target_date for r in repo.list_runs(s)[0]] == [DAY]
    queued = client.post(f"/v1/runs/{too_far - dt.timedelta(days=1)}", headers=auth)
    assert queued.status_code == 202 and queued.json()["status"] == "pending"
    latest = client.get("/v1/runs/latest").json()
    assert latest["target_date"] == DAY.isoformat() and latest["status"] == "succeeded"
