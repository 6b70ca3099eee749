"""The operator's commands end to end through the CLI: migrate, run, backfill, demo, health.

Each test points the process-wide settings at its own database and inbox through ``PM25_*``
variables, as an operator would, and asserts on the exit code, the output and the database.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import inspect, select, text

from service.cli import main
from service.scheduler import COMPONENT, Scheduler
from service.settings import GridSpec, Settings, get_settings
from service.storage import repository as repo
from service.storage.db import make_engine, session_factory, transaction
from service.storage.tables import Heartbeat, Publication, Run, RunStatus
from service.twin.sample import write_sample_day

from .conftest import DAY

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pm25_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set ``PM25_*`` variables through the returned monkeypatch; settings are re-read.

    Logs go to stderr at WARNING, so what a command prints for people is all the output."""
    get_settings.cache_clear()
    monkeypatch.setenv("PM25_LOG_LEVEL", "WARNING")
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def _invoke(*args: str) -> Result:
    get_settings.cache_clear()
    return CliRunner().invoke(main, list(args))


def _runs(url: str) -> list[Run]:
    engine = make_engine(url)
    with session_factory(engine)() as s:
        runs = list(s.scalars(select(Run).order_by(Run.target_date, Run.attempt)))
    engine.dispose()
    return runs


@pytest.fixture
def pipeline(
    pm25_env: pytest.MonkeyPatch, tmp_path: Path, db_url: str, tiny_model: Path
) -> tuple[str, Path]:
    """A migrated database, an inbox holding ``DAY`` only, the tiny model: for run/backfill."""
    inbox = tmp_path / "inbox"
    write_sample_day(inbox, DAY, GridSpec())
    for name, value in {
        "PM25_DATABASE_URL": db_url,
        "PM25_INBOX": str(inbox),
        "PM25_MODEL_PATH": str(tiny_model),
        "PM25_INPUT_SETTLE_SECONDS": "0",
    }.items():
        pm25_env.setenv(name, value)
    return db_url, inbox


def test_migrate_creates_every_table_and_a_second_run_changes_nothing(
    pm25_env: pytest.MonkeyPatch, empty_db_url: str
) -> None:
    from service.storage.migrate import alembic_config

    pm25_env.setenv("PM25_DATABASE_URL", empty_db_url)
    first = _invoke("migrate")
    assert first.exit_code == 0, first.output
    assert "is at the newest schema" in first.output
    engine = make_engine(empty_db_url)
    tables = set(inspect(engine).get_table_names())
    assert {"runs", "run_fields", "publications", "models", "heartbeats"} <= tables
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(empty_db_url)).get_current_head()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    engine.dispose()
    again = _invoke("migrate")
    assert again.exit_code == 0, again.output


def test_run_publishes_the_date_and_says_so(pipeline: tuple[str, Path]) -> None:
    url, _ = pipeline
    result = _invoke("run", "--date", DAY.isoformat())
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{DAY}: succeeded (run 1)"
    engine = make_engine(url)
    with session_factory(engine)() as s:
        run = repo.published_run(s, DAY)
        assert run is not None and run.id == 1 and not run.fallback
        assert run.model is not None and run.model.case == 3
        assert repo.run_field(s, run.id) is not None
    engine.dispose()


def test_run_without_inputs_exits_non_zero_and_waits(pipeline: tuple[str, Path]) -> None:
    url, _ = pipeline
    other = DAY + dt.timedelta(days=1)
    result = _invoke("run", "--date", other.isoformat())
    assert result.exit_code == 1
    assert result.output.startswith(f"{other}: waiting_for_inputs (run 1): ")
    assert "no file matches" in result.output
    runs = _runs(url)
    assert [(r.target_date, r.status) for r in runs] == [(other, RunStatus.WAITING)]


@pytest.mark.parametrize(
    ("date", "says"),
    [
        ("20261207", "use YYYY-MM-DD"),  # date.fromisoformat reads it; the API does not
        ("2026-W49-1", "use YYYY-MM-DD"),
        ("0001-01-01", "before 2000-01-01"),
        ("9999-12-31", "too far ahead"),
    ],
)
def test_run_refuses_a_date_the_api_refuses_in_one_line(
    pipeline: tuple[str, Path], date: str, says: str
) -> None:
    url, _ = pipeline
    result = _invoke("run", "--date", date)
    assert result.exit_code != 0 and says in result.output
    if "YYYY" not in says:  # the window: one line, exit 1
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert _runs(url) == []  # nothing was written


def test_backfill_runs_every_date_and_reports_the_failures(pipeline: tuple[str, Path]) -> None:
    url, inbox = pipeline
    write_sample_day(inbox, DAY + dt.timedelta(days=2), GridSpec(), seed=1)
    start, end = DAY, DAY + dt.timedelta(days=2)  # the middle day has no inputs
    result = _invoke("backfill", "--start", start.isoformat(), "--end", end.isoformat())
    assert result.exit_code == 1
    assert "2 of 3 dates succeeded" in result.output
    assert f"{DAY + dt.timedelta(days=1)}: waiting_for_inputs" in result.output
    runs = _runs(url)
    assert [(r.target_date, r.status, r.trigger) for r in runs] == [
        (DAY, RunStatus.SUCCEEDED, "backfill"),
        (DAY + dt.timedelta(days=1), RunStatus.WAITING, "backfill"),
        (DAY + dt.timedelta(days=2), RunStatus.SUCCEEDED, "backfill"),
    ]
    engine = make_engine(url)
    with session_factory(engine)() as s:
        assert s.query(Publication).count() == 2
    engine.dispose()


def test_backfill_of_complete_inputs_exits_zero(pipeline: tuple[str, Path]) -> None:
    url, _ = pipeline
    result = _invoke("backfill", "--start", DAY.isoformat(), "--end", DAY.isoformat())
    assert result.exit_code == 0, result.output
    assert "1 of 1 dates succeeded" in result.output
    assert [r.status for r in _runs(url)] == [RunStatus.SUCCEEDED]


def test_backfill_rejects_a_reversed_range(pipeline: tuple[str, Path]) -> None:
    url, _ = pipeline
    result = _invoke("backfill", "--start", "2024-01-09", "--end", "2024-01-01")
    assert result.exit_code == 2 and "before" in result.output
    assert _runs(url) == []


@pytest.mark.parametrize("command", ["run", "backfill", "scheduler", "demo", "train", "evaluate"])
def test_model_commands_say_in_one_line_that_tensorflow_is_missing(
    pipeline: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, command: str, tmp_path: Path
) -> None:
    url, _ = pipeline
    monkeypatch.setitem(sys.modules, "keras", None)  # `import keras` fails, as without [ml]
    args = {
        "run": ["--date", DAY.isoformat()],
        "backfill": ["--start", DAY.isoformat(), "--end", DAY.isoformat()],
        "scheduler": [],
        "demo": ["--no-serve", "--days", "1", "--dir", str(tmp_path / "demo")],
        "train": ["--archive", str(tmp_path), "--out", str(tmp_path / "m")],
        "evaluate": ["--archive", str(tmp_path)],
    }[command]
    result = _invoke(command, *args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: this command runs the model, which needs TensorFlow")
    assert "pip install 'pm25-forecast[ml]'" in lines[0]
    assert _runs(url) == [] and not (tmp_path / "demo").exists()


# -- pm25 health: the scheduler container's health check ----------------------------------------


@pytest.fixture
def health_db(pm25_env: pytest.MonkeyPatch, db_url: str) -> Iterator[Settings]:
    pm25_env.setenv("PM25_DATABASE_URL", db_url)
    yield Settings(database_url=db_url)


def test_health_fails_in_one_line_before_the_first_heartbeat(health_db: Settings) -> None:
    result = _invoke("health", "scheduler")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: scheduler unhealthy: no heartbeat in {_redacted(health_db)}"
    ]


def test_health_passes_after_the_schedulers_heartbeat(health_db: Settings) -> None:
    sessions = session_factory(make_engine(health_db.database_url.get_secret_value()))
    sched = Scheduler(health_db, sessions)
    sched.heartbeat()  # what the running process does every 30 s (a standby: no tick yet)
    result = _invoke("health", "scheduler", "--max-age", "120")
    assert result.exit_code == 0, result.output
    assert re.fullmatch(
        r"scheduler healthy: last heartbeat \d s ago \(.+:\d+, standby\)\n", result.output
    )


def test_health_fails_when_the_heartbeat_is_older_than_max_age(health_db: Settings) -> None:
    sessions = session_factory(make_engine(health_db.database_url.get_secret_value()))
    with transaction(sessions) as s:
        repo.beat(s, COMPONENT, {"leader": True, "worker": "host:1"})
    with transaction(sessions) as s:
        row = s.get(Heartbeat, COMPONENT)
        assert row is not None
        row.seen_at = repo.now() - dt.timedelta(seconds=300)
    stale = _invoke("health", "scheduler", "--max-age", "120")
    assert stale.exit_code == 1
    lines = stale.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: scheduler unhealthy: last heartbeat 300")
    assert lines[0].endswith("more than 120 s")
    patient = _invoke("health", "scheduler", "--max-age", "600")
    assert patient.exit_code == 0 and "(host:1, leader)" in patient.output


def test_health_fails_in_one_line_when_the_database_is_down(
    pm25_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "db.sqlite").mkdir()  # a directory where the database file should be
    pm25_env.setenv("PM25_DATABASE_URL", f"sqlite:///{tmp_path}/db.sqlite")
    result = _invoke("health", "scheduler")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0] == (
        f"Error: scheduler unhealthy: database sqlite:///{tmp_path}/db.sqlite unavailable "
        "(OperationalError)"
    )


def _redacted(settings: Settings) -> str:
    from service.storage.db import redact

    return redact(settings.database_url)


# -- pm25 demo ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_without_serving_sets_up_a_published_forecast(
    pm25_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`pm25 demo --no-serve --days 1`: twin inputs, a migrated database, two published days."""
    from service.timeaxis import KST as SEOUL

    before = dt.datetime.now(SEOUL).date()
    result = _invoke("demo", "--no-serve", "--days", "1", "--dir", str(tmp_path / "demo"))
    assert result.exit_code == 0, result.output
    tomorrow = before + dt.timedelta(days=1)
    if dt.datetime.now(SEOUL).date() != before:  # midnight KST passed during the test
        pytest.skip("the KST day changed while the demo ran")
    assert "[1/3] writing SYNTHETIC" in result.output and "[3/3]" in result.output
    assert f"      {before}: succeeded\n" in result.output
    assert f"      {tomorrow}: succeeded\n" in result.output
    assert "fallback" not in result.output.lower()
    assert "Admin token for POST /v1/runs/{date}: " in result.output
    assert (tmp_path / "demo" / "inbox" / "cmaq" / f"{tomorrow:%Y%m%d}").is_dir()
    url = f"sqlite:///{tmp_path / 'demo' / 'pm25.sqlite'}"
    runs = _runs(url)
    assert [(r.target_date, r.status, r.trigger) for r in runs] == [
        (before, RunStatus.SUCCEEDED, "demo"),
        (tomorrow, RunStatus.SUCCEEDED, "demo"),
    ]
    assert all(r.model is not None and r.model.synthetic and r.model.case == 3 for r in runs)
    assert all(r.model.sha256 == runs[0].model.sha256 for r in runs)  # type: ignore[union-attr]
    assert not any(r.fallback for r in runs)


SERVE_TOKEN = "serve-Admin-token-0123456789-abcdefgh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("garbage", "is not usable"),
        ("sqlite://user:pw-secret-1@/path", "is not usable"),
        ("nosuchdb://u:pw-secret-1@h/db", "is not usable"),
        ("postgresql://u:pw-secret-1@127.0.0.1:1/db", "does not answer"),
        ("sqlite:///{tmp}/empty.sqlite", "run `pm25 migrate`"),
    ],
)
def test_serve_checks_the_database_before_starting_in_one_line(
    pm25_env: pytest.MonkeyPatch, tmp_path: Path, url: str, says: str
) -> None:
    pm25_env.setenv("PM25_DATABASE_URL", url.format(tmp=tmp_path))
    pm25_env.setenv("PM25_ADMIN_TOKEN", SERVE_TOKEN)
    result = _invoke("serve", "--host", "127.0.0.1", "--port", str(_free_port()))
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "PM25_DATABASE_URL" in lines[0] and says in lines[0], lines
    assert "pw-secret-1" not in result.output


def test_serve_refuses_port_0_and_a_port_in_use(pm25_env: pytest.MonkeyPatch, db_url: str) -> None:
    pm25_env.setenv("PM25_DATABASE_URL", db_url)
    pm25_env.setenv("PM25_ADMIN_TOKEN", SERVE_TOKEN)
    for port in ("0", "65536"):  # 0 is not "the default port"
        result = _invoke("serve", "--port", port)
        assert result.exit_code == 2 and "1<=x<=65535" in result.output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = _invoke("serve", "--host", "127.0.0.1", "--port", port)
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: cannot listen on 127.0.0.1:{port}: already in use"


def test_serve_with_workers_and_a_bad_url_exits_at_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PM25_")}
    env.update(PM25_DATABASE_URL="sqlite://user:pw-secret-1@/path", PM25_ADMIN_TOKEN=SERVE_TOKEN)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--workers",
            "2",
            "--port",
            str(_free_port()),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # uvicorn's workers used to hang on it, printing tracebacks
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "Error: PM25_DATABASE_URL (sqlite://user:***@/path) is not usable: "
        "Invalid SQLite URL: sqlite://user:***@/path"
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["demo", "--days", "-1", "--no-serve"],
        ["twin", "--start", "2026-01-01", "--end", "2026-01-01", "--out", "x", "--seed", "-1"],
        ["twin", "--start", "2026-01-01", "--end", "2026-01-01", "--out", "x", "--workers", "-3"],
        ["twin", "--start", "2026-01-01", "--end", "2026-01-01", "--out", "x", "--workers", "0"],
        ["twin", "--seed", str(2**32), "--start", "2026-01-01", "--end", "2026-01-01"],
        ["twin", "report", ".", "--seed", "-1"],
        ["twin", "report", ".", "--check-year", "-2020"],
        ["train", "--archive", ".", "--out", "x", "--epochs", "0"],
        ["train", "--archive", ".", "--out", "x", "--filters", "-1"],
        ["train", "--archive", ".", "--out", "x", "--seed", "-5"],
    ],
)
def test_counts_and_seeds_below_their_minimum_are_usage_errors(
    pm25_env: pytest.MonkeyPatch, tmp_path: Path, args: list[str]
) -> None:
    """Refused by click while parsing (exit 2, its usage error), before any work starts."""
    pm25_env.chdir(tmp_path)
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output and "is not in the range" in result.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "var").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["backfill", "--start", "1999-12-30", "--end", "2000-01-02"], "--start: target date"),
        (["backfill", "--start", DAY.isoformat(), "--end", "9999-12-31"], "--end: target date"),
        (["backfill", "--start", "9999-12-30", "--end", "9999-12-31"], "too far ahead"),
        (["inputs", "--date", "1999-12-31"], "before 2000-01-01"),
        (["inputs", "--date", "9999-12-31"], "too far ahead"),
    ],
)
def test_backfill_and_inputs_refuse_dates_outside_the_run_window_in_one_line(
    pipeline: tuple[str, Path], args: list[str], says: str
) -> None:
    """The window of ``pm25 run --date``: one line, exit 1, nothing run or written."""
    url, _ = pipeline
    result = _invoke(*args)
    assert result.exit_code == 1, result.output
    assert says in result.output and len(result.output.strip().splitlines()) == 1
    assert _runs(url) == []


def test_backfill_says_clearly_that_start_is_after_end(pipeline: tuple[str, Path]) -> None:
    result = _invoke("backfill", "--start", "2024-01-09", "--end", "2024-01-01")
    assert result.exit_code == 2
    assert "--end 2024-01-01 is before --start 2024-01-09" in result.output


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("notaurl", "<unparseable database URL>"),
        ("garbage", "<unparseable database URL>"),
        ("foo://x", "foo://x"),
        ("foo://user:hunter2secret@host/db", "foo://user:***@host/db"),
    ],
)
def test_migrate_names_an_invalid_database_url_with_an_example(
    pm25_env: pytest.MonkeyPatch, tmp_path: Path, url: str, shown: str
) -> None:
    pm25_env.chdir(tmp_path)
    pm25_env.setenv("PM25_DATABASE_URL", url)
    result = _invoke("migrate")
    assert result.exit_code == 1, result.output
    out = result.output.strip()
    assert len(out.splitlines()) == 1
    assert f"PM25_DATABASE_URL ({shown}) is not usable: not a valid database URL" in out
    assert "sqlite:///" in out and "postgresql://" in out
    assert "hunter2secret" not in out and "ArgumentError" not in out


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--date", DAY.isoformat()],
        ["verify", "--date", DAY.isoformat()],
        ["serve"],
        ["backfill", "--start", DAY.isoformat(), "--end", DAY.isoformat()],
    ],
)
def test_commands_other_than_migrate_do_not_create_a_missing_database_folder(
    pm25_env: pytest.MonkeyPatch, tmp_path: Path, command: list[str]
) -> None:
    folder = tmp_path / "no" / "such"
    pm25_env.setenv("PM25_DATABASE_URL", f"sqlite:///{folder}/x.sqlite")
    pm25_env.setenv("PM25_ADMIN_TOKEN", secrets.token_urlsafe(32))
    if command == ["serve"]:
        with socket.socket() as s:  # a free port, so that only the database can refuse
            s.bind(("127.0.0.1", 0))
            command = ["serve", "--port", str(s.getsockname()[1])]
    result = _invoke(*command)
    assert result.exit_code == 1, result.output
    assert "does not exist" in result.output and "pm25 migrate" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "no").exists()


def test_migrate_creates_the_folder_of_a_new_sqlite_database(
    pm25_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/new/folder/x.sqlite"
    pm25_env.setenv("PM25_DATABASE_URL", url)
    result = _invoke("migrate")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "new" / "folder" / "x.sqlite").is_file() and _runs(url) == []
