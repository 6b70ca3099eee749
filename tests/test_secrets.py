"""Secrets: how strong the admin token must be and how it is presented, and the database URL
kept out of every representation, log line and answer."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import ProgrammingError

from service.api.app import create_app
from service.api.auth import WeakTokenError, token_weakness
from service.api.deps import SCHEMA_MESSAGE, is_schema_error
from service.settings import Settings
from service.storage.db import redact, redact_text
from service.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
STRONG = "secrets-Admin-token-0123456789-abcdefgh"
PASSWORD = "hunter2-s3cret"
DOWN_URL = f"postgresql+psycopg://pm25:{PASSWORD}@127.0.0.1:1/pm25"


def test_weak_tokens_are_refused_and_random_ones_pass() -> None:
    weak = [
        "",
        "admin",
        "aaaaaaaaaaaaaaaa",  # 16 characters passed the old check
        "a" * 40,
        "abababababababababababababababababab",
        "abcdefghijklmnopqrstuvwxyzabcdefghij",  # one class of characters
        "0123456789012345678901234567890123",
        f" {STRONG}",
        STRONG[:31],
    ]
    for token in weak:
        assert token_weakness(token) is not None, token
    for _ in range(500):
        assert token_weakness(secrets.token_urlsafe(24)) is None  # 32 characters
        assert token_weakness(secrets.token_hex(24)) is None  # openssl rand -hex 24
    assert token_weakness(STRONG) is None


def test_the_service_refuses_a_weak_token_whatever_the_demo_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PM25_DEMO", "true")
    monkeypatch.setenv("PM25_ADMIN_TOKEN", "admin")
    monkeypatch.setenv("PM25_DATABASE_URL", f"sqlite:///{tmp_path}/x.sqlite")
    assert "demo" not in Settings.model_fields
    with pytest.raises(WeakTokenError, match="PM25_ADMIN_TOKEN is too weak") as err:
        create_app(Settings())
    assert "admin" not in str(err.value).replace("PM25_ADMIN_TOKEN", "")


@pytest.mark.parametrize("where", ["environment", ".env file"])
def test_pm25_serve_stops_with_one_line_for_a_weak_token(tmp_path: Path, where: str) -> None:
    settings = {"PM25_DEMO": "true", "PM25_ADMIN_TOKEN": "aaaaaaaaaaaaaaaa",
                "PM25_DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite"}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PM25_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if where == "environment":
        env.update(settings)
    else:
        (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    out = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--port", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "PM25_ADMIN_TOKEN is too weak" in lines[0], out.stderr
    assert "Traceback" not in out.stderr and "aaaaaaaaaaaaaaaa" not in out.stderr


@pytest.fixture
def client(tmp_path: Path):  # type: ignore[no-untyped-def]
    from service.storage.migrate import upgrade

    url = f"sqlite:///{tmp_path}/pm25.sqlite"
    upgrade(url)
    with TestClient(create_app(Settings(database_url=url, admin_token=STRONG))) as c:
        yield c


def test_reruns_need_the_bearer_scheme(client: TestClient) -> None:
    url = "/v1/runs/2024-01-09"
    for header in (STRONG, f"Basic {STRONG}", "Bearer", f"Token {STRONG}"):
        r = client.post(url, headers={"Authorization": header})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert r.headers["content-type"] == "application/problem+json" and STRONG not in r.text
    wrong = client.post(url, headers={"Authorization": f"Bearer {STRONG}x"})
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert client.post(url).status_code == 401
    for scheme in ("Bearer", "bearer", "BEARER"):
        ok = client.post(url, headers={"Authorization": f"{scheme} {STRONG}"})
        assert ok.status_code == 202, ok.text


def test_the_database_url_is_a_secret_everywhere() -> None:
    settings = Settings(database_url=DOWN_URL, admin_token=STRONG)
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert PASSWORD not in text and STRONG not in text
    assert settings.database_url.get_secret_value() == DOWN_URL
    assert redact(settings.database_url) == "postgresql+psycopg://pm25:***@127.0.0.1:1/pm25"
    assert redact(DOWN_URL) == redact(settings.database_url)
    message = f"connection failed for password {PASSWORD}"
    assert PASSWORD not in redact_text(message, settings.database_url)


def test_database_errors_reach_neither_the_client_nor_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    down = Settings(database_url=DOWN_URL, admin_token=STRONG)  # nothing listens on port 1
    empty = Settings(database_url=f"sqlite:///{tmp_path}/empty.sqlite", admin_token=STRONG)
    caplog.set_level(logging.DEBUG)
    paths = ["/v1/forecasts/2024-01-09/grid", "/v1/runs", "/v1/status"]
    # unreachable, and reachable but without tables: neither is ready
    for settings, checked in ((down, [*paths, "/v1/ready"]), (empty, [*paths, "/v1/ready"])):
        with TestClient(create_app(settings)) as client:
            for path in checked:
                r = client.get(path)
                assert r.status_code == 503, (path, r.text)
                assert r.headers["content-type"] == "application/problem+json"
                for leak in (
                    PASSWORD,
                    "postgresql",
                    "127.0.0.1:1",
                    "SELECT",
                    "FROM",
                    "[parameters",
                ):
                    assert leak not in r.text, (path, leak, r.text)
    assert "database error on /v1/runs" in caplog.text
    assert PASSWORD not in caplog.text


def test_a_short_password_is_blanked_as_a_credential_not_as_every_number() -> None:
    url = "postgresql+psycopg://pm25:5999@db.example:5999/pm25"
    message = (
        'connection to server at "db.example", port 5999 failed: password=5999 rejected '
        "for postgresql://pm25:5999@db.example:5999/pm25"
    )
    redacted = redact_text(message, url)
    assert "port 5999 failed" in redacted and "db.example:5999/pm25" in redacted
    assert "password=***" in redacted and "pm25:***@db.example" in redacted
    assert ":5999@" not in redacted and "password=5999" not in redacted
    # a long password is blanked wherever it appears, as before
    assert redact_text(f"port 5432 {PASSWORD}", DOWN_URL) == "port 5432 ***"


@pytest.mark.parametrize("revision", [None, "0003"])
def test_an_unmigrated_database_is_not_ready_and_every_route_says_run_migrate(
    empty_db_url: str, revision: str | None
) -> None:
    if revision is not None:
        upgrade(empty_db_url, revision)  # migrated once, then the service moved on
    settings = Settings(database_url=empty_db_url, admin_token=STRONG)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/v1/ready")
        assert ready.status_code == 503 and "pm25 migrate" in ready.json()["detail"]
        routes = ["/v1/verification", "/v1/verification/2024-01-09"]  # tables of 0004
        if revision is None:
            routes += ["/v1/runs", "/v1/runs/latest", "/v1/status", "/edr/collections"]
            routes += [
                "/v1/forecasts/2024-01-09/grid",
                "/v1/forecasts/2024-01-09/point?lat=37.5&lon=127",
            ]
        for path in routes:
            r = client.get(path)
            assert r.status_code == 503, (path, r.text)
            assert r.json()["detail"] == SCHEMA_MESSAGE, path
    if revision is not None:
        upgrade(empty_db_url)
        with TestClient(create_app(settings)) as client:
            assert client.get("/v1/ready").status_code == 200


def test_postgres_missing_table_errors_are_schema_errors_not_bugs() -> None:
    class UndefinedTableError(Exception):
        sqlstate = "42P01"

    missing = ProgrammingError(
        "SELECT 1", {}, UndefinedTableError('relation "runs" does not exist')
    )
    assert is_schema_error(missing)
    assert not is_schema_error(ProgrammingError("SELECT 1", {}, Exception("syntax error")))
