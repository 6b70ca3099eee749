"""``pm25 demo``: the whole service on a fresh machine, on SYNTHETIC inputs, in one command.

Writes twin inputs for the last few days and tomorrow, migrates a local SQLite database,
runs the daily pipeline for those days with the shipped default model, then starts the
scheduler (its own process) and the API, and prints URLs to try. The demo generates a strong
random admin token: it needs no exception to the API's rules, and the environment offers
none.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import click

from service.timeaxis import tomorrow_kst


def run_demo(
    folder: Path, *, days: int = 5, port: int = 8000, serve: bool = True
) -> dict[str, str]:
    """Set the demo up (and serve it unless ``serve`` is false); return its environment."""
    from service.jobs import run_daily_forecast
    from service.settings import Settings
    from service.storage.db import make_engine, session_factory
    from service.storage.migrate import upgrade
    from service.twin.archive import generate

    t0 = time.perf_counter()
    folder = folder.resolve()
    token = secrets.token_urlsafe(32)
    env = {
        "PM25_DATABASE_URL": f"sqlite:///{folder / 'pm25.sqlite'}",
        "PM25_INBOX": str(folder / "inbox"),
        "PM25_ADMIN_TOKEN": token,
        "PM25_INPUT_SETTLE_SECONDS": "0",
        "PM25_API_PORT": str(port),
    }
    settings = Settings.model_validate({k.removeprefix("PM25_").lower(): v for k, v in env.items()})
    tomorrow = tomorrow_kst()
    first = tomorrow - dt.timedelta(days=days)
    click.echo(f"[1/3] writing SYNTHETIC CMAQ, WRF and analysis files for {first} .. {tomorrow}")
    generate(settings.grid, first, tomorrow, settings.inbox, progress=True)
    click.echo(f"[2/3] migrating {folder / 'pm25.sqlite'}")
    upgrade(settings.database_url.get_secret_value())
    click.echo(f"[3/3] running the daily pipeline with {settings.model_path}")
    sessions = session_factory(make_engine(settings.database_url.get_secret_value()))
    for k in range(days + 1):
        date = first + dt.timedelta(days=k)
        out = run_daily_forecast(date, settings=settings, sessions=sessions, trigger="demo")
        label = out.status.value + (" (CMAQ fallback)" if out.fallback else "")
        click.echo(f"      {date}: {label}" + (f" - {out.message}" if out.message else ""))
    from service.verification.job import verify_past_days  # the past days, verified

    dates = [first + dt.timedelta(days=k) for k in range(days + 1)]
    click.echo("      verified against the SYNTHETIC analysis (GET /v1/verification):")
    for line in verify_past_days(settings, sessions, dates, tomorrow - dt.timedelta(days=1)):
        click.echo(f"      {line}")
    click.echo(f"set up in {time.perf_counter() - t0:.0f} s")
    base = f"http://127.0.0.1:{port}"
    click.echo(
        "\nTry:\n"
        f"  {base}/                                            the page: map, stations, runs\n"
        f"  {base}/docs                                        the API, interactively\n"
        f"  {base}/v1/forecasts/tomorrow/grid?hour=12&format=png  tomorrow's map at noon\n"
        f"  {base}/v1/forecasts/tomorrow/point?lat=37.5665&lon=126.978   Seoul City Hall\n"
        f"  {base}/v1/stations/111121/forecast?date=tomorrow       station 111121 (Jung-gu)\n"
        f"  {base}/v1/forecasts/tomorrow/grid?format=netcdf        CF netCDF for xarray\n"
        f"  {base}/v1/status                                      the run monitor\n"
        f"  {base}/v1/verification                                past days against the analysis\n"
        f"  {base}/edr/collections/pm25-forecast/position?coords=POINT(126.978%2037.5665)"
        "   OGC API - EDR (CoverageJSON)\n"
        f"  {base}/metrics                                        Prometheus metrics\n"
        f"Admin token for POST /v1/runs/{{date}}: {token}\n"
        "All inputs are SYNTHETIC (the twin); the model was trained on the twin too."
    )
    if not serve:
        return env
    child_env = {**os.environ, **env}
    scheduler = subprocess.Popen([sys.executable, "-m", "service.cli", "scheduler"], env=child_env)
    try:
        os.environ.update(env)
        from service.settings import get_settings

        get_settings.cache_clear()
        from service.api.server import serve_api

        serve_api("127.0.0.1", port, log_level="warning")
    finally:
        scheduler.terminate()
        scheduler.wait(10)
    return env
