"""Load for the API benchmark: wrk at full speed, and a fixed-rate generator for the soak.

``wrk`` (a separate C process, Debian package ``wrk``) measures throughput and latency at a
number of connections. The soak needs a fixed request rate whatever the answers' latency
(wrk2 is not packaged), so :func:`fixed_rate` sends on a schedule from an asyncio loop,
timing each request from when it was due (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class Load:
    """One wrk run: requests per second, latency percentiles (ms), errors."""

    url: str
    connections: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if m is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(
    url: str,
    connections: int,
    seconds: float,
    *,
    body: bytes | None = None,
    threads: int = 2,
) -> Load:
    """Load ``url`` (GET, or POST of a JSON ``body``) with wrk; errors are socket errors,
    timeouts and answers other than 2xx/3xx."""
    script = None
    if body is not None:
        script = Path(tempfile.mkstemp(suffix=".lua")[1])
        escaped = body.decode().replace("\\", "\\\\").replace('"', '\\"')
        script.write_text(
            'wrk.method = "POST"\n'
            f'wrk.body = "{escaped}"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    command = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}"]
    command += [f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s"]
    command += (["-s", str(script)] if script else []) + [url]
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        if script is not None:
            script.unlink()
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Load(
        url=url,
        connections=connections,
        seconds=seconds,
        rps=float(_find(r"Requests/sec:\s+([\d.]+)", out)),
        p50_ms=_ms(_find(r"\s50%\s+(\S+)", out)),
        p99_ms=_ms(_find(r"\s99%\s+(\S+)", out)),
        requests=int(_find(r"(\d+) requests in", out)),
        errors=(sum(int(g) for g in socket.groups()) if socket else 0)
        + (int(bad.group(1)) if bad else 0),
    )


def _find(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    if m is None:
        raise RuntimeError(f"wrk output without {pattern!r}:\n{text}")
    return m.group(1)


def server_ms(
    client: httpx.Client, url: str, n: int, *, body: bytes | None = None
) -> dict[str, float]:
    """Median server time (the ``Server-Timing`` header) and client time of ``n`` requests,
    one at a time, in ms."""
    server, wall = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        if body is None:
            r = client.get(url)
        else:
            r = client.post(url, content=body, headers={"Content-Type": "application/json"})
        wall.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        server.append(float(_find(r"dur=([\d.]+)", r.headers["server-timing"])))
    return {"server_ms": statistics.median(server), "client_ms": statistics.median(wall)}


@dataclass
class Soak:
    """A fixed-rate run: what was sent and answered, and the latency from when each was due."""

    rate: float
    seconds: float
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms) or [float("nan")]
        return {
            "rate_per_s": self.rate,
            "seconds": self.seconds,
            "sent": self.sent,
            "ok": self.ok,
            "errors": sum(self.errors.values()),
            "error_kinds": self.errors,
            "p50_ms": lat[len(lat) // 2],
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "max_ms": lat[-1],
        }


Request = tuple[str, str, bytes | None]
"""(method, path with query, JSON body or None)."""


def fixed_rate(
    host: str,
    port: int,
    plan: list[Request],
    rate: float,
    seconds: float,
    *,
    connections: int = 16,
) -> Soak:
    """Send ``plan``'s requests in turn, ``rate`` a second for ``seconds``, over at most
    ``connections`` keep-alive connections; an error is any answer but 2xx/3xx, a broken
    connection or no answer within 10 s."""
    return asyncio.run(_fixed_rate(host, port, plan, rate, seconds, connections))


async def _fixed_rate(
    host: str, port: int, plan: list[Request], rate: float, seconds: float, connections: int
) -> Soak:
    soak = Soak(rate, seconds)
    idle: asyncio.Queue[tuple[Any, Any, float]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait((*await asyncio.open_connection(host, port), time.monotonic()))
    tasks = []
    start = time.monotonic()
    total = int(rate * seconds)
    for k in range(total):
        due = start + k / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(host, port, plan[k % len(plan)], due, idle, soak)))
        soak.sent += 1
    await asyncio.gather(*tasks)
    while not idle.empty():
        _, writer, _ = idle.get_nowait()
        writer.close()
    return soak


async def _one(
    host: str,
    port: int,
    request: Request,
    due: float,
    idle: asyncio.Queue[tuple[Any, Any, float]],
    soak: Soak,
) -> None:
    method, path, body = request
    reader, writer, last = await idle.get()
    if time.monotonic() - last > 3.0:  # the server closes idle connections after 5 s
        writer.close()
        reader, writer = await asyncio.open_connection(host, port)
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    try:
        writer.write(head.encode() + b"\r\n" + (body or b""))
        status, keep = await asyncio.wait_for(_response(reader), timeout=10.0)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        kind = type(exc).__name__
        soak.errors[kind] = soak.errors.get(kind, 0) + 1
        writer.close()
        reader, writer = await asyncio.open_connection(host, port)
    else:
        soak.latencies_ms.append((time.monotonic() - due) * 1000)
        if 200 <= status < 400:
            soak.ok += 1
        else:
            soak.errors[f"HTTP {status}"] = soak.errors.get(f"HTTP {status}", 0) + 1
        if not keep:
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
    idle.put_nowait((reader, writer, time.monotonic()))


async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one answer (the API always sends Content-Length); its status and keep-alive."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() != "close"
