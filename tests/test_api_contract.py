"""The API against its own OpenAPI schema (schemathesis), and as a real uvicorn process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service.settings import Settings

from .conftest import published_database

TOKEN = "contract-Admin-token-0123456789-abcdef"


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Settings:
    return published_database(tmp_path_factory.mktemp("contract"), tiny_model, TOKEN)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(database: Settings):  # type: ignore[no-untyped-def]
    """A real ``pm25 serve`` (uvicorn) process on a free port."""
    port = _free_port()
    env = {
        **os.environ,
        "PM25_DATABASE_URL": database.database_url.get_secret_value(),
        "PM25_ADMIN_TOKEN": TOKEN,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(f"{base}/v1/ready", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError(
                    proc.stderr.read().decode() if proc.stderr else "no server"
                ) from None
            time.sleep(0.1)
    yield base
    proc.terminate()
    proc.wait(10)


def test_a_real_uvicorn_process_serves_the_forecast(server: str) -> None:
    r = httpx.get(
        f"{server}/v1/forecasts/2024-01-09/point",
        params={"lat": 37.5665, "lon": 126.978},
        headers={"Accept-Encoding": "gzip"},
    )
    assert r.status_code == 200 and len(r.json()["values"]) == 24
    assert r.headers["server-timing"].startswith("app;dur=")
    grid = httpx.get(f"{server}/v1/forecasts/2024-01-09/grid", headers={"Accept-Encoding": "gzip"})
    assert grid.headers["content-encoding"] == "gzip" and grid.json()["run"]["run_id"] >= 1


def test_schemathesis_finds_no_server_error(server: str, tmp_path: Path) -> None:
    """Property-based requests over every operation of the OpenAPI schema."""
    exe = Path(sys.executable).parent / "schemathesis"
    if not exe.exists():
        pytest.skip("schemathesis is not installed")
    out = subprocess.run(
        [
            str(exe),
            "run",
            f"{server}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--phases",
            "examples,fuzzing",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
