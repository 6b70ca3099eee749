"""The API under abuse, as a real ``pm25 serve`` (uvicorn) process on 127.0.0.1.

Errors from every layer are problem documents; HEAD works; long URLs, big and slow bodies,
idle and half-sent connections are refused or closed within documented bounds; echoed input
is clipped; dates are strict; health answers in milliseconds while heavy routes are loaded,
and the process's memory stays bounded.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.api.deps import clip
from service.api.guard import MAX_BODY_BYTES, MAX_TARGET_BYTES, RequestGuard
from service.api.server import HEAD_TIMEOUT_S, MAX_HEAD_BYTES
from service.settings import Settings

from .conftest import published_database

TOKEN = "abuse-Admin-token-0123456789-abcdefgh"
ROOT = Path(__file__).resolve().parents[1]
DAY = "2024-01-09"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Settings:
    return published_database(tmp_path_factory.mktemp("abuse"), tiny_model, TOKEN)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def pm25_serve(
    settings: Settings, *args: str, code: str | None = None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``pm25 serve`` (or Python ``code`` given the port) on a free loopback port, ready to
    answer; stopped afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "PM25_DATABASE_URL": settings.database_url.get_secret_value(),
        "PM25_ADMIN_TOKEN": TOKEN,
    }
    cmd = [sys.executable, "-m", "service.cli", "serve", "--port", str(port), *args]
    if code is not None:
        cmd = [sys.executable, "-c", code, str(port)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError(proc.communicate()[1].decode()) from None
            time.sleep(0.1)
    try:
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.fixture(scope="module")
def server(database: Settings) -> Iterator[tuple[int, int]]:
    with pm25_serve(database) as (port, proc):
        yield port, proc.pid


def raw(port: int, data: bytes, *, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` as it is and read one response: status, headers, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return read_response(s)


def read_response(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def assert_problem(status: int, headers: dict[str, str], body: bytes, expected: int) -> Any:
    assert status == expected, body[:300]
    assert headers["content-type"] == PROBLEM
    doc = json.loads(body)
    assert doc["status"] == expected and doc["title"] and doc["detail"] and doc["type"]
    return doc


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


# -- 11: every error is a problem document; HEAD works where GET does --------------------------


def test_unknown_routes_methods_and_bad_bodies_are_problem_documents(server) -> None:  # type: ignore[no-untyped-def]
    port, _ = server
    base = f"http://127.0.0.1:{port}"
    missing = httpx.get(f"{base}/nope")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert missing.json()["instance"] == "/nope" and "/docs" in missing.json()["detail"]
    wrong = httpx.delete(f"{base}/v1/health")
    assert wrong.status_code == 405 and wrong.headers["content-type"] == PROBLEM
    assert wrong.headers["allow"] == "GET, HEAD" and "DELETE" in wrong.json()["detail"]
    points = f"{base}/v1/forecasts/{DAY}/points"
    undecodable = httpx.post(points, content=b"\x80{", headers={"content-type": "application/json"})
    assert undecodable.status_code == 400 and undecodable.headers["content-type"] == PROBLEM
    broken = httpx.post(points, content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 422 and broken.headers["content-type"] == PROBLEM
    status, headers, body = raw(port, b"NOT HTTP AT ALL\r\n\r\n")
    assert_problem(status, headers, body, 400)


def test_head_answers_wherever_get_does(server) -> None:  # type: ignore[no-untyped-def]
    port, _ = server
    base = f"http://127.0.0.1:{port}"
    for path in (
        "/v1/health",
        "/v1/ready",
        f"/v1/forecasts/{DAY}/grid?hour=3",
        f"/v1/forecasts/{DAY}/grid?hour=3&format=png",
        "/v1/stations",
        "/v1/runs",
        "/docs",
        "/openapi.json",
    ):
        get = httpx.get(base + path)
        head = httpx.head(base + path)
        assert head.status_code == get.status_code == 200, path
        assert (
            head.content == b"" and head.headers["content-length"] == get.headers["content-length"]
        )
        assert head.headers["content-type"] == get.headers["content-type"]
    post_only = httpx.head(f"{base}/v1/forecasts/{DAY}/points")
    assert post_only.status_code == 405 and post_only.headers["allow"] == "POST"


def test_long_urls_and_headers_get_problem_documents(server) -> None:  # type: ignore[no-untyped-def]
    port, _ = server
    # 100 KB in one piece reaches the app's guard
    status, headers, body = raw(
        port, b"GET /v1/health?" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    doc = assert_problem(status, headers, body, 414)
    assert str(MAX_TARGET_BYTES) in doc["detail"] and len(body) < 1000
    # a head arriving in pieces is bounded by the server before it is complete
    for start, expected in ((b"GET /v1/health?", 414), (b"GET /v1/health HTTP/1.1\r\nX: ", 431)):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(start + b"a" * 10_000)
            time.sleep(0.2)
            with suppress(OSError):  # the server may have answered and closed already
                s.sendall(b"a" * 10_000)
            doc = assert_problem(*read_response(s), expected)
            assert str(MAX_HEAD_BYTES) in doc["detail"]


def test_a_whole_long_request_in_one_piece_is_the_guards_to_answer(server) -> None:  # type: ignore[no-untyped-def]
    port, _ = server
    # a complete head over 16 KiB is not an incomplete one: the app's guard answers 414
    # (431 would mean the server counted a finished request's bytes as a new head's)
    for size in (20_000, 50_000):
        request = b"GET /v1/health?" + b"a" * size + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        assert_problem(*raw(port, request), 414)


# -- 12: bodies, header time, idle connections ---------------------------------------------------


def test_big_bodies_are_refused_before_they_are_read(server) -> None:  # type: ignore[no-untyped-def]
    port, pid = server
    before = rss_mb(pid)
    head = (
        f"POST /v1/forecasts/{DAY}/points HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    )
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"{head}Content-Length: 5000000\r\n\r\n".encode())
        doc = assert_problem(*read_response(s), 413)  # answered before a byte of the body
        assert time.perf_counter() - t0 < 2 and str(MAX_BODY_BYTES) in doc["detail"]
        s.sendall(b" " * 5_000_000)  # the server drops it, and the connection stays usable
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[0] == 200

    def chunked() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
            try:
                for _ in range(200):  # 20 MB, 100 KB a chunk
                    s.sendall(b"186a0\r\n" + b"[" * 100_000 + b"\r\n")
                s.sendall(b"0\r\n\r\n")
            except OSError:
                pass
            assert_problem(*read_response(s), 413)

    def declared() -> None:
        assert_problem(*raw(port, f"{head}Content-Length: 20000000\r\n\r\n".encode()), 413)

    threads = [threading.Thread(target=f) for f in (chunked, chunked, declared, declared)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert rss_mb(pid) - before < 30, (before, rss_mb(pid))


def test_idle_and_half_sent_connections_are_closed(server) -> None:  # type: ignore[no-untyped-def]
    port, _ = server
    t0 = time.perf_counter()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as idle,
        socket.create_connection(("127.0.0.1", port), timeout=30) as half,
    ):
        half.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")  # never finished
        doc = assert_problem(*read_response(half), 408)
        assert "request head" in doc["detail"]
        assert idle.recv(100) == b""  # closed without a word
    assert HEAD_TIMEOUT_S - 1 < time.perf_counter() - t0 < HEAD_TIMEOUT_S + 5


def test_connections_beyond_the_cap_get_503(database: Settings) -> None:
    code = (
        "import sys; from service.api import server; "
        "server.BoundedHttpToolsProtocol.max_connections = 3; "
        "server.serve_api('127.0.0.1', int(sys.argv[1]), log_level='warning')"
    )
    with pm25_serve(database, code=code) as (port, _):
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        time.sleep(0.2)
        assert_problem(*raw(port, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"), 503)
        for s in held:
            s.close()
        time.sleep(0.2)
        assert raw(port, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200


def test_a_slow_body_gets_408_and_too_many_requests_get_503() -> None:
    import asyncio

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def trickle() -> Any:  # a byte every 0.1 s, never the end
        await asyncio.sleep(0.1)
        return {"type": "http.request", "body": b"x", "more_body": True}

    async def whole() -> Any:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def run() -> list[int]:
        guard = RequestGuard(echo, body_timeout_s=0.35, max_in_flight=1)
        statuses: list[int] = []

        async def send(message: Any) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        scope = {"type": "http", "method": "POST", "path": "/v1/x", "headers": []}
        slow = asyncio.create_task(guard(scope, trickle, send))
        await asyncio.sleep(0.05)
        await guard(scope, whole, send)  # one in flight already: 503
        await guard({**scope, "path": "/v1/health"}, whole, send)  # never refused: 200
        try:
            await slow
        except Exception as exc:  # a Problem, which the app's handler renders
            statuses.append(getattr(exc, "status_code", 0))
        return statuses

    assert asyncio.run(run()) == [503, 200, 408]


# -- 13: echoes and dates -----------------------------------------------------------------------


def test_echoed_input_is_clipped(server) -> None:  # type: ignore[no-untyped-def]
    port, _ = server
    base = f"http://127.0.0.1:{port}"
    name = "x" * 5000
    for url in (
        f"{base}/v1/stations/{name}/forecast",
        f"{base}/v1/stations/111121/forecast?date={name}",
        f"{base}/v1/forecasts/{name}/grid",
        f"{base}/v1/runs/{name}",
    ):
        r = httpx.get(url)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, url
        assert len(r.content) < 2000 and name not in r.text
    unknown = httpx.get(f"{base}/v1/stations/{'y' * 60}/forecast")
    assert unknown.status_code == 404 and len(unknown.content) < 1000
    assert clip("z" * 500) == "z" * 100 + "... (500 characters)" and clip("short") == "short"
    huge = httpx.get(f"{base}/v1/stations/{'x' * 50_000}/forecast")
    assert huge.status_code == 414 and len(huge.content) < 1000


def test_dates_are_strict_and_today_works(server) -> None:  # type: ignore[no-untyped-def]
    port, _ = server
    base = f"http://127.0.0.1:{port}"
    for bad in ("20240109", "2024-W02-2", "2024-1-9", "2024-02-30", "٢٠٢٤-٠١-٠٩"):
        r = httpx.get(f"{base}/v1/forecasts/{bad}/grid", params={"hour": 1})
        assert r.status_code == 422 and "YYYY-MM-DD" in r.json()["detail"], bad
        assert httpx.get(f"{base}/v1/runs", params={"from": bad}).status_code == 422, bad
        assert httpx.get(f"{base}/v1/runs", params={"to": bad}).status_code == 422, bad
    assert httpx.get(f"{base}/v1/forecasts/{DAY}/grid", params={"hour": 1}).status_code == 200
    runs = httpx.get(f"{base}/v1/runs", params={"from": DAY, "to": DAY}).json()
    assert runs["total"] >= 1
    today = httpx.get(f"{base}/v1/forecasts/today/point", params={"lat": 37.5, "lon": 127.0})
    assert (
        today.status_code == 404 and "latest forecast is for 2024-01-09" in today.json()["detail"]
    )


# -- 14: health under load, bounded memory, several workers -------------------------------------

LOADGEN = """
import asyncio, json, sys

async def one(port, path, counts):
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(f"GET {path} HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n".encode())
        await w.drain()
        status = (await r.readline()).split()[1].decode()
        while await r.read(1 << 16):
            pass
        w.close()
    except Exception as exc:
        status = type(exc).__name__
    counts[status] = counts.get(status, 0) + 1

async def main():
    counts = {}
    paths = json.loads(sys.argv[2])
    await asyncio.gather(*(one(int(sys.argv[1]), p, counts) for p in paths))
    print(json.dumps(counts))

asyncio.run(main())
"""


def health_ms(port: int) -> float:
    t0 = time.perf_counter()
    status = raw(port, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")[0]
    assert status == 200
    return (time.perf_counter() - t0) * 1000


def load(port: int, pid: int, paths: list[str]) -> dict[str, Any]:
    """Send all ``paths`` at once from another process; time /v1/health meanwhile."""
    gen = subprocess.Popen(
        [sys.executable, "-c", LOADGEN, str(port), json.dumps(paths)],
        stdout=subprocess.PIPE,
        text=True,
    )
    times, peak = [], 0.0
    while gen.poll() is None:
        times.append(health_ms(port))
        peak = max(peak, rss_mb(pid))
        time.sleep(0.02)
    out = gen.communicate(timeout=120)[0]
    return {"statuses": json.loads(out), "health_ms": sorted(times), "rss_peak_mb": peak}


def test_health_answers_in_milliseconds_while_grids_are_loaded(server) -> None:  # type: ignore[no-untyped-def]
    port, pid = server
    idle = sorted(health_ms(port) for _ in range(20))
    runs = {
        "json": load(port, pid, [f"/v1/forecasts/{DAY}/grid"] * 100),
        "png": load(
            port, pid, [f"/v1/forecasts/{DAY}/grid?format=png&hour={h % 24}" for h in range(100)]
        ),
    }
    summary = {
        name: {
            "statuses": r["statuses"],
            "health_n": len(r["health_ms"]),
            "health_ms_median": round(statistics.median(r["health_ms"]), 1),
            "health_ms_max": round(r["health_ms"][-1], 1),
        }
        for name, r in runs.items()
    }
    print(json.dumps({"idle_health_ms_max": round(idle[-1], 1), **summary}))
    for r in runs.values():
        assert r["statuses"] == {"200": 100}
        # measured on 2 shared, busy cores: medians 5-12 ms, maxima 90-360 ms (3-13 s before)
        assert statistics.median(r["health_ms"]) < 100 and r["health_ms"][-1] < 1000


def test_memory_stays_bounded_under_200_concurrent_heavy_requests(database: Settings) -> None:
    formats = ("json", "netcdf", "png")
    paths = [f"/v1/forecasts/{DAY}/grid?format={formats[k % 3]}&hour={k % 24}" for k in range(200)]
    paths[::10] = [f"/v1/forecasts/{DAY}/grid"] * 20  # the whole 24-hour grid too
    with pm25_serve(database) as (port, proc):  # a fresh process: nothing cached yet
        before = rss_mb(proc.pid)
        first = load(port, proc.pid, paths)
        second = load(port, proc.pid, paths)  # all cached now: no growth
        after = rss_mb(proc.pid)
    print(json.dumps({"rss_before_mb": before, "rss_peak_mb": first["rss_peak_mb"],
                      "rss_after_mb": after, "second_peak_mb": second["rss_peak_mb"]}))  # fmt: skip
    assert first["statuses"] == second["statuses"] == {"200": 200}
    # measured: about 115 MB idle and 190-200 MB after (renderers loaded, answers cached);
    # before this was bounded, 200 connections took a process from 116 MB to 442 MB
    assert first["rss_peak_mb"] < 320 and second["rss_peak_mb"] < first["rss_peak_mb"] + 20


def test_serve_with_several_workers(database: Settings) -> None:
    with pm25_serve(database, "--workers", "2") as (port, proc):
        workers = [
            p for p in Path("/proc").iterdir()
            if p.name.isdigit() and _ppid(p) == proc.pid
        ]  # fmt: skip
        assert len(workers) >= 2
        for _ in range(20):
            assert httpx.get(f"http://127.0.0.1:{port}/v1/forecasts/{DAY}/grid?hour=1").is_success
    assert proc.returncode is not None


def _ppid(proc_dir: Path) -> int:
    try:
        return int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1
