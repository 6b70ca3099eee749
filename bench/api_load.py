"""API benchmark: a real uvicorn process, loaded by wrk (a separate process), on this machine.

Measures the point lookup's median server time (Server-Timing) and throughput, the full
24-hour netCDF grid's time, and the API process's memory. Needs the shipped model (to make
a forecast to serve) and ``wrk`` (Debian package ``wrk``).

    python bench/api_load.py [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DAY = dt.date(2024, 1, 9)


def prepare(folder: Path) -> dict[str, str]:
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
    return {"PM25_DATABASE_URL": url, "PM25_ADMIN_TOKEN": secrets.token_urlsafe(32)}


def server_ms(client: httpx.Client, url: str, n: int) -> tuple[float, float]:
    server, wall = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(url)
        wall.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        server.append(float(re.search(r"dur=([\d.]+)", r.headers["server-timing"]).group(1)))  # type: ignore[union-attr]
    return statistics.median(server), statistics.median(wall)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, **prepare(Path(tmp))}
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(args.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{args.port}"
        try:
            t0 = time.perf_counter()
            while True:
                try:
                    if httpx.get(f"{base}/v1/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            startup = time.perf_counter() - t0
            point = f"{base}/v1/forecasts/{DAY}/point?lat=37.5665&lon=126.978"
            grid_nc = f"{base}/v1/forecasts/{DAY}/grid?format=netcdf"
            with httpx.Client() as client:
                server_ms(client, point, 50)  # warm caches
                p_server, p_wall = server_ms(client, point, 500)
                nc_server, nc_wall = server_ms(client, grid_nc, 30)
                client.get(f"{base}/v1/forecasts/{DAY}/grid?format=png&hour=12")
                client.get(f"{base}/v1/forecasts/{DAY}/grid")
            wrk = subprocess.run(
                ["wrk", "-t2", f"-c{args.connections}", f"-d{args.seconds}s", "--latency", point],
                capture_output=True,
                text=True,
                check=True,
            )
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk.stdout).group(1))  # type: ignore[union-attr]
            lat50 = re.search(r"50%\s+([\d.]+\w+)", wrk.stdout)
            result = {
                "machine": f"{os.cpu_count()} cores (API and wrk share them)",
                "startup_s": round(startup, 2),
                "point_server_ms_median": round(p_server, 3),
                "point_client_ms_median": round(p_wall, 3),
                "point_requests_per_s": rps,
                "point_latency_p50_under_load": lat50.group(1) if lat50 else None,
                "netcdf_24h_server_ms_median": round(nc_server, 2),
                "netcdf_24h_client_ms_median": round(nc_wall, 2),
                "api_rss_mb_after_load": round(rss_mb(proc.pid), 1),
            }
            print(wrk.stdout)
            print(json.dumps(result, indent=2))
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
