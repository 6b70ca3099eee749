"""``make bench``: every benchmark in one run, written to docs/BENCHMARKS.md.

Runs the pipeline benchmarks (:mod:`bench.run`) and the API's (:mod:`bench.api_load`: the
framework ceiling, the peer, the soak, the workers), then writes the report with the
machine, the date and the load average before and after, each figure beside its target,
and the hand-written notes of ``bench/notes.md`` (profiles, what was tried, one-off runs).

    python bench/report.py            # the full run: about 25 minutes (a 10-minute soak)
    python bench/report.py --quick    # short runs and a 20 s soak, to check it works
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import api_load, run

ROOT = Path(__file__).resolve().parents[1]
KST = dt.timezone(dt.timedelta(hours=9), "KST")


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        int(line.split()[1]) / 1024**2
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    import numpy

    versions = [f"Python {platform.python_version()}", f"NumPy {numpy.__version__}"]
    try:
        import tensorflow as tf

        versions.append(f"TensorFlow {tf.__version__} (CPU)")
    except ImportError:
        pass
    import fastapi
    import uvicorn

    versions += [f"FastAPI {fastapi.__version__}", f"uvicorn {uvicorn.__version__} (httptools)"]
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB",
        "software": ", ".join(versions),
        "host": platform.node(),
    }


def load_average() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, to check the bench")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC)
    before = load_average()
    offline = run.measure(list(run.BENCHMARKS), 3 if args.quick else 15)
    with tempfile.TemporaryDirectory() as tmp:
        api = api_load.measure(api_load.QUICK if args.quick else api_load.FULL, Path(tmp))
    figures = {
        "quick": args.quick,
        "machine": machine(),
        "started": started.isoformat(),
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "load_before": before,
        "load_after": load_average(),
        "offline": offline,
        "api": api,
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    args.out.write_text(render(figures))
    print(f"wrote {args.out}", file=sys.stderr)


# --- the report ------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def rps(value: float) -> str:
    return f"{value:,.0f} req/s"


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render(f: dict[str, Any]) -> str:
    api, off = f["api"], f["offline"]
    st, at, heavy, soak, workers = (
        api["server_time"],
        api["at_32"],
        api["heavy"],
        api["soak"],
        api["workers"],
    )
    started = dt.datetime.fromisoformat(f["started"])
    lines = ["# Benchmarks", ""]
    if f["quick"]:
        lines += [
            "> **Quick run** (`python bench/report.py --quick`: 2-second loads, one round, a "
            "20-second soak): it checks that the bench works; its figures are not the "
            "project's. `make bench` writes the real ones.",
            "",
        ]
    lines += [
        f"Written by `make bench` (`bench/report.py`) in one run, {started:%Y-%m-%d %H:%M} UTC "
        f"({started.astimezone(KST):%H:%M} KST) to "
        f"{dt.datetime.fromisoformat(f['finished']):%H:%M} UTC.",
        "",
        f"- Machine: {f['machine']['cpu']}; {f['machine']['software']}.",
        f"- Load average (1 / 5 / 15 min) before: {f['load_before']}; after: "
        f"{f['load_after']}. The API, its load generator (`wrk`, 2 threads, or the soak's "
        "Python generator) and the peer share these cores: figures are for this machine, "
        "this load.",
        "- Server time is the API's own `Server-Timing` (from the request reaching the app to "
        "the answer's first byte), the median of requests sent one at a time; throughput and "
        "latency are wrk's, one uvicorn worker unless said; side-by-side runs alternate "
        f"({api['plan']['rounds']} rounds of {api['plan']['seconds']:g} s each, medians).",
        "",
        "## Pipeline",
        "",
        "| what | command | median (min-max) | target |",
        "|---|---|---|---|",
    ]
    offline_rows = {
        "ingest_one_day": ("read one day of CMAQ and WRF, build the 24-hour tensor", "1 s"),
        "twin_one_day": ("write one day of twin files (CMAQ, WRF, analysis)", "3 s"),
        "inference_one_day": (
            "inference for one day, the default model (case3_all; TensorFlow, CPU)",
            "0.3 s",
        ),
        "inference_one_day_case3": ("the paper's Case 3 inference for one day", "0.15 s"),
        "pipeline_one_day": ("one day: files -> tensor -> model -> checks -> SQLite", "5 s"),
    }
    for name, (what, target) in offline_rows.items():
        r = off[name]
        lines.append(
            f"| {what} | `python bench/run.py {name}` | {ms(r['median_s'])} "
            f"({ms(r['min_s'])}-{ms(r['max_s'])}, n={r['repeat']}) | <= {target} |"
        )
    point, ceiling, edr = at["point"], at["ceiling"], at["edr_position"]
    ratio = point["rps"] / ceiling["rps"]
    edr_cost = point["rps"] / edr["rps"]
    lines += [
        "",
        "## API (`python bench/api_load.py`)",
        "",
        "| figure | measured | target | |",
        "|---|---|---|---|",
        f"| point lookup, 32 connections, 1 worker | {rps(point['rps'])} "
        f"(rounds {point['rounds_rps']}) | >= 4,000 req/s | {verdict(point['rps'] >= 4000)} |",
        f"| point lookup p99 latency at 32 connections | {point['p99_ms']:.1f} ms "
        f"(p50 {point['p50_ms']:.1f} ms) | < 20 ms | {verdict(point['p99_ms'] < 20)} |",
        f"| point lookup server time (p50) | {st['point']['server_ms']:.3f} ms | <= 0.3 ms "
        f"| {verdict(st['point']['server_ms'] <= 0.3)} |",
        f"| framework ceiling: a FastAPI route returning a constant, same server settings "
        f"| {rps(ceiling['rps'])} (p99 {ceiling['p99_ms']:.1f} ms) | | |",
        f"| point lookup / ceiling | {ratio:.0%} | >= 70% | {verdict(ratio >= 0.7)} |",
    ]
    for name, label, target in (
        ("grid_json", "whole grid as JSON (24 x 68 x 59)", 10),
        ("stations_json", "all stations, JSON", 5),
        ("stations_csv", "all stations, CSV", 5),
        ("points_100", "POST of 100 points", 3),
    ):
        t = st[name]["server_ms"]
        lines.append(
            f"| {label}, server time | {t:.3f} ms (client {st[name]['client_ms']:.2f} ms) "
            f"| <= {target} ms | {verdict(t <= target)} |"
        )
    for name, label in (
        ("grid_json", "whole grid JSON"),
        ("stations_json", "stations JSON"),
        ("stations_csv", "stations CSV"),
        ("points_100", "POST 100 points"),
    ):
        c1, c8 = heavy[name]["c1"], heavy[name]["c8"]
        lines.append(
            f"| {label}: 1 / 8 connections | {rps(c1['rps'])} / {rps(c8['rps'])} "
            f"(p50 {c1['p50_ms']:.2f} / {c8['p50_ms']:.2f} ms) | 8 not slower than 1 "
            f"| {verdict(c8['rps'] >= c1['rps'])} |"
        )
    edr_time = st["edr_position"]["server_ms"] / st["point"]["server_ms"]
    lines += [
        f"| EDR position (a daily run's instance), 32 connections | {rps(edr['rps'])} "
        f"(p99 {edr['p99_ms']:.1f} ms) | | |",
        f"| EDR position cost / `/v1` point cost (throughput; server time "
        f"{st['edr_position']['server_ms']:.3f} / {st['point']['server_ms']:.3f} ms) "
        f"| {edr_cost:.2f}x (server time {edr_time:.2f}x) | <= 1.5x | {verdict(edr_cost <= 1.5)} |",
        f"| EDR position of the latest run (resolves 'latest' in the database), server time "
        f"| {st['edr_position_latest']['server_ms']:.3f} ms | | |",
        f"| API start to ready | {api['startup_s']:.2f} s | | |",
    ]
    for key, label in (("point", "point lookup"), ("points_100", "POST of 100 points")):
        w = workers[key]
        lines.append(
            f"| `pm25 serve --workers 2` / one worker ({label}, 64 connections) "
            f"| {w['speedup']:.2f}x ({rps(w['workers_2']['rps'])} / "
            f"{rps(w['workers_1']['rps'])}) | >= 1.8x | {verdict(w['speedup'] >= 1.8)} |"
        )
    growth = soak["rss_mb_end"] / soak["rss_mb_start"] - 1
    lines += [
        "",
        "## Soak",
        "",
        f"{soak['seconds']:g} s at a fixed {soak['rate_per_s']:g} requests/s (Python open-loop "
        "generator, `bench/loadgen.py`; latency counted from when each request was due), 16 "
        f"keep-alive connections, cycling through {soak['distinct_requests']} requests: points "
        "at 400 coordinates (bilinear and nearest), EDR positions of the latest run, grid hours, "
        "the whole grid, netCDF, stations JSON and CSV, POSTs of 10 points, 'latest' points, "
        "health.",
        "",
        "| figure | measured | target | |",
        "|---|---|---|---|",
        f"| requests sent / answered 2xx-3xx | {soak['sent']:,} / {soak['ok']:,} | | |",
        f"| errors | {soak['errors']} {soak['error_kinds'] or ''} | 0 | "
        f"{verdict(soak['errors'] == 0)} |",
        f"| latency p50 / p99 / max | {soak['p50_ms']:.1f} / {soak['p99_ms']:.1f} / "
        f"{soak['max_ms']:.0f} ms | | |",
        f"| API memory (RSS) at start / end | {soak['rss_mb_start']:.0f} MB / "
        f"{soak['rss_mb_end']:.0f} MB ({growth:+.1%}) | growth < 10% | {verdict(growth < 0.1)} |",
        f"| API memory just after start, before any request | {api['rss_mb_start']:.0f} MB | | |",
    ]
    if "peer" in api:
        p = api["peer"]
        lines += [
            "",
            "## Beside the peer: xpublish with xpublish-edr",
            "",
            f"The peer ({p['versions']}) runs in its own virtual environment "
            "(`var/bench/peer-venv`, made by the bench) and serves the API's own CF netCDF of "
            "the day (`/v1/forecasts/2024-01-09/grid?format=netcdf`), one uvicorn worker, as "
            "does the API. Both answer an EDR position query at Seoul City Hall with the "
            "nearest cell as CoverageJSON, measured alternately. Ours: "
            f"`{p['ours'].split(':8765')[1]}`; "
            f"the peer's: `{p['theirs'].split(':8767')[1]}`. One request at a time, the "
            f"peer's takes {p['client_ms_theirs']:.1f} ms at the client, ours "
            f"{p['server_time_ours']['client_ms']:.2f} ms.",
            "",
            "| connections | ours | p50 / p99 | peer | p50 / p99 | ours / peer |",
            "|---|---|---|---|---|---|",
        ]
        for c in (1, 8, 32):
            o, t = p[f"c{c}"]["ours"], p[f"c{c}"]["theirs"]
            lines.append(
                f"| {c} | {rps(o['rps'])} | {o['p50_ms']:.2f} / {o['p99_ms']:.1f} ms "
                f"| {rps(t['rps'])} | {t['p50_ms']:.1f} / {t['p99_ms']:.0f} ms "
                f"| {o['rps'] / t['rps']:,.0f}x |"
            )
    notes = ROOT / "bench" / "notes.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
