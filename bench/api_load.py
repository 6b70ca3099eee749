"""API benchmark: real uvicorn processes loaded by wrk (a separate process), on this machine.

Serves one published day (made by the real pipeline with the shipped model, in SQLite) and
measures, with the API and the load generator sharing the machine's cores:

- server times (``Server-Timing``, median of requests one at a time) of the point lookup,
  the whole grid as JSON, all stations as JSON and CSV, a POST of 100 points, EDR position;
- the point lookup's throughput and latency at 32 connections beside the framework's
  ceiling (:mod:`bench.ceiling`) and EDR position, measured alternately;
- the heavy routes' throughput at 1 and at 8 connections;
- EDR position beside the peer (:mod:`bench.peer`) at 1, 8 and 32 connections, alternately;
- a soak at a fixed rate against a mix of routes: errors, latency, the API's memory;
- ``pm25 serve --workers 2`` beside one worker, alternately.

    python bench/api_load.py [--quick]      (prints JSON; bench/report.py writes the report)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import ceiling, peer
from bench.loadgen import Request, fixed_rate, server_ms, wrk

DAY = dt.date(2024, 1, 9)
LAT, LON = 37.5665, 126.978  # Seoul City Hall
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Plan:
    """How long each measurement runs."""

    seconds: float  # one wrk run
    rounds: int  # alternations of the runs compared side by side
    timed: int  # requests one at a time for a server time
    soak_s: float
    soak_rate: float  # requests per second during the soak


FULL = Plan(seconds=10, rounds=3, timed=300, soak_s=600, soak_rate=200)
QUICK = Plan(seconds=2, rounds=1, timed=30, soak_s=20, soak_rate=100)


def prepare(folder: Path) -> dict[str, str]:
    """One day published by the real pipeline into SQLite; the API's environment."""
    from service.jobs import run_daily_forecast
    from service.settings import GridSpec, Settings
    from service.storage.db import make_engine, session_factory
    from service.storage.migrate import upgrade
    from service.twin.sample import write_sample_day

    write_sample_day(folder / "inbox", DAY, GridSpec())
    url = f"sqlite:///{folder}/api.sqlite"
    upgrade(url)
    settings = Settings(inbox=folder / "inbox", database_url=url, input_settle_seconds=0)
    out = run_daily_forecast(DAY, settings=settings, sessions=session_factory(make_engine(url)))
    assert out.status.value == "succeeded", out.message
    return {
        "PM25_DATABASE_URL": url,
        "PM25_ADMIN_TOKEN": secrets.token_urlsafe(32),
        "PM25_LOG_LEVEL": "WARNING",
    }


def points_body(n: int) -> bytes:
    """A POST body of ``n`` station coordinates inside the grid, each with an id."""
    from service.grid import Grid
    from service.settings import GridSpec
    from service.stations import load_stations

    grid = Grid(GridSpec())
    inside = [s for s in load_stations() if grid.cell_of(s.lat, s.lon) is not None][:n]
    points = [{"lat": s.lat, "lon": s.lon, "id": s.code or s.name} for s in inside]
    return json.dumps({"points": points}).encode()


def routes(base: str) -> dict[str, str]:
    day = f"{base}/v1/forecasts/{DAY}"
    edr = f"{base}/edr/collections/pm25-forecast"
    where = f"coords=POINT({LON}%20{LAT})"
    return {
        "point": f"{day}/point?lat={LAT}&lon={LON}",
        "grid_json": f"{day}/grid",
        "stations_json": f"{day}/stations",
        "stations_csv": f"{day}/stations?format=csv",
        "points_100": f"{day}/points",
        "edr_position": f"{edr}/instances/{DAY}/position?{where}",
        "edr_position_nearest": f"{edr}/instances/{DAY}/position?{where}&method=nearest",
        "edr_position_latest": f"{edr}/position?{where}",
        "netcdf": f"{day}/grid?format=netcdf",
    }


@contextlib.contextmanager
def serving(command: list[str], env: dict[str, str], ready: str) -> Iterator[int]:
    """Run a server until the block ends; yields its process id once ``ready`` answers."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{command} exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(ready, timeout=30).status_code < 500:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not answer {ready}")
            time.sleep(0.2)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def api_command(port: int, workers: int = 1) -> list[str]:
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
    return command + (["--workers", str(workers)] if workers > 1 else [])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def alternately(runs: dict[str, Any], rounds: int) -> dict[str, list[Any]]:
    """Call each of ``runs`` in turn, ``rounds`` times: the results of each, in order."""
    out: dict[str, list[Any]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            out[name].append(asdict(run()))
    return out


def median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the rounds (with every round's requests per second)."""
    keys = ("rps", "p50_ms", "p99_ms")
    out = {k: statistics.median(r[k] for r in results) for k in keys}
    out["errors"] = sum(r["errors"] for r in results)
    out["rounds_rps"] = [round(r["rps"], 1) for r in results]
    return out


def soak_plan(base: str, body: bytes) -> list[Request]:
    """The soak's mix: mostly points at many coordinates, the heavy routes now and then."""
    from service.grid import Grid
    from service.settings import GridSpec

    grid = Grid(GridSpec())
    lon_c, lat_c = grid.centre_lonlat
    rows, cols = grid.shape
    day = f"/v1/forecasts/{DAY}"
    plan: list[Request] = []
    for k in range(400):  # 400 coordinates spread over the grid, bilinear and nearest
        r, c = (k * 37) % (rows - 1), (k * 53) % (cols - 1)
        lat = round(float(lat_c[r, c] + lat_c[r + 1, c + 1]) / 2, 4)
        lon = round(float(lon_c[r, c] + lon_c[r + 1, c + 1]) / 2, 4)
        method = "nearest" if k % 4 == 0 else "bilinear"
        plan.append(("GET", f"{day}/point?lat={lat}&lon={lon}&method={method}", None))
        if k % 4 == 1:
            where = f"coords=POINT({lon}%20{lat})"
            plan.append(("GET", f"/edr/collections/pm25-forecast/position?{where}", None))
        if k % 10 == 2:
            plan.append(("GET", f"{day}/grid?hour={k % 24}", None))
        if k % 20 == 3:
            plan.append(("POST", f"{day}/points", body))
        if k % 40 == 5:
            plan.append(("GET", f"{day}/stations", None))
            plan.append(("GET", f"{day}/stations?format=csv", None))
            plan.append(("GET", f"{day}/grid", None))
            plan.append(("GET", "/v1/health", None))
        if k % 100 == 7:
            plan.append(("GET", f"{day}/grid?format=netcdf", None))
            plan.append(("GET", "/v1/forecasts/latest/point?lat=35.18&lon=129.08", None))
    return plan


def measure(plan: Plan, folder: Path, *, with_peer: bool = True) -> dict[str, Any]:
    """Every API figure of the report (see the module's docstring)."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    env = {**os.environ, **prepare(folder)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    body100 = points_body(100)
    out: dict[str, Any] = {"plan": asdict(plan)}
    api_port, ceiling_port, peer_port = 8765, 8766, 8767
    base = f"http://127.0.0.1:{api_port}"
    url = routes(base)
    ceiling_url = f"http://127.0.0.1:{ceiling_port}{ceiling.PATH}"
    t0 = time.perf_counter()
    with (
        serving(api_command(api_port), env, f"{base}/v1/ready") as api_pid,
        serving([sys.executable, "-m", "bench.ceiling", str(ceiling_port)], env, ceiling_url) as _,
    ):
        out["startup_s"] = round(time.perf_counter() - t0, 2)
        out["rss_mb_start"] = rss_mb(api_pid)
        with httpx.Client(timeout=60) as client:
            for name, u in url.items():  # first answers: rendering, caches
                for _ in range(3):
                    if name == "points_100":
                        json_type = {"Content-Type": "application/json"}
                        client.post(u, content=body100, headers=json_type).raise_for_status()
                    else:
                        client.get(u).raise_for_status()
            (folder / "field.nc").write_bytes(client.get(url["netcdf"]).content)
            out["server_time"] = {
                name: server_ms(
                    client, u, plan.timed, body=body100 if name == "points_100" else None
                )
                for name, u in url.items()
            }
        # the point lookup beside the framework's ceiling and EDR position, alternately
        side = alternately(
            {
                "ceiling": lambda: wrk(ceiling_url, 32, plan.seconds),
                "point": lambda: wrk(url["point"], 32, plan.seconds),
                "edr_position": lambda: wrk(url["edr_position"], 32, plan.seconds),
            },
            plan.rounds,
        )
        out["at_32"] = {name: median_of(runs) for name, runs in side.items()}
        # the heavy routes at 1 and at 8 connections
        out["heavy"] = {}
        for name in ("grid_json", "stations_json", "stations_csv", "points_100"):
            body = body100 if name == "points_100" else None
            runs = alternately(
                {
                    "c1": lambda n=name, b=body: wrk(url[n], 1, plan.seconds, body=b),
                    "c8": lambda n=name, b=body: wrk(url[n], 8, plan.seconds, body=b),
                },
                plan.rounds,
            )
            out["heavy"][name] = {c: median_of(r) for c, r in runs.items()}
        if with_peer:
            out["peer"] = measure_peer(plan, folder, url["edr_position_nearest"], peer_port)
        # the soak: a fixed rate against a mix of routes
        host_plan = soak_plan(base, points_body(10))
        out["soak"] = {"rss_mb_start": rss_mb(api_pid), "distinct_requests": len(host_plan)}
        soak = fixed_rate("127.0.0.1", api_port, host_plan, plan.soak_rate, plan.soak_s)
        out["soak"].update(soak.summary())
        out["soak"]["rss_mb_end"] = rss_mb(api_pid)
    out["workers"] = measure_workers(plan, env)
    return out


def measure_peer(plan: Plan, folder: Path, ours: str, port: int) -> dict[str, Any]:
    """EDR position, ours beside the peer's, at 1, 8 and 32 connections, alternately."""
    python = peer.environment(ROOT / "var" / "bench")
    theirs = f"http://127.0.0.1:{port}{peer.POSITION}"
    result: dict[str, Any] = {"versions": peer.versions(python), "ours": ours, "theirs": theirs}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = peer.command(python, folder / "field.nc", port, folder)
    with serving(command, env, theirs), httpx.Client(timeout=60) as client:
        for u in (ours, theirs):
            for _ in range(10):
                client.get(u).raise_for_status()
        result["server_time_ours"] = server_ms(client, ours, plan.timed)
        wall = []
        for _ in range(min(plan.timed, 100)):
            t = time.perf_counter()
            client.get(theirs).raise_for_status()
            wall.append((time.perf_counter() - t) * 1000)
        result["client_ms_theirs"] = statistics.median(wall)
        for c in (1, 8, 32):
            runs = alternately(
                {
                    "ours": lambda c=c: wrk(ours, c, plan.seconds),
                    "theirs": lambda c=c: wrk(theirs, c, plan.seconds),
                },
                plan.rounds,
            )
            result[f"c{c}"] = {name: median_of(r) for name, r in runs.items()}
    return result


def measure_workers(plan: Plan, env: dict[str, str]) -> dict[str, Any]:
    """One worker beside ``--workers 2``, alternately, at 64 connections: the point lookup
    (where wrk's own share of the two cores is largest) and POST of 100 points (where the
    server's work dominates)."""
    one, two = 8768, 8769
    body = points_body(100)
    result: dict[str, Any] = {}
    with (
        serving(api_command(one), env, f"http://127.0.0.1:{one}/v1/ready"),
        serving(api_command(two, workers=2), env, f"http://127.0.0.1:{two}/v1/ready"),
        httpx.Client() as client,
    ):
        for name in ("point", "points_100"):
            urls = {w: routes(f"http://127.0.0.1:{p}")[name] for w, p in (("1", one), ("2", two))}
            sent = body if name == "points_100" else None
            for u in urls.values():
                for _ in range(100):  # every worker answers some: caches warm
                    headers = {"Connection": "close", "Content-Type": "application/json"}
                    if sent is None:
                        client.get(u, headers=headers)
                    else:
                        client.post(u, content=sent, headers=headers)
            runs = alternately(
                {
                    "workers_1": lambda u=urls["1"], b=sent: wrk(u, 64, plan.seconds, body=b),
                    "workers_2": lambda u=urls["2"], b=sent: wrk(u, 64, plan.seconds, body=b),
                },
                plan.rounds,
            )
            figures = {w: median_of(r) for w, r in runs.items()}
            figures["speedup"] = figures["workers_2"]["rps"] / figures["workers_1"]["rps"]
            result[name] = figures
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, a 20 s soak")
    parser.add_argument("--no-peer", action="store_true", help="leave the peer out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(QUICK if args.quick else FULL, Path(tmp), with_peer=not args.no_peer)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
