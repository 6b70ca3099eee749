"""Calibrate the twin quickly: simulate a sample of its 7-day blocks in memory, print the targets.

Nothing is written to disk: each sampled block runs truth, CMAQ forecast and analysis exactly as
``pm25 twin`` does, and the statistics of ``pm25 twin report`` are computed on the days it
yields. With ``--stride k`` every k-th block of each year is run, and the five-worst-days share
is estimated from the ``5/k`` worst sampled days.

    python scripts/twin_calibrate.py --years 2019 2020 2021 --stride 4
    python scripts/twin_calibrate.py --years 2019 2020 2021 2022 --check-year 2022 --workers 16

Keep the check year out of sight while calibrating (``--check-year``): the twin's report lists
it apart, as data the calibration should not be tuned to.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.grid import Grid
from service.settings import GridSpec
from service.twin.archive import BLOCK_DAYS, Twin, block_start
from service.twin.report import (
    YearSums,
    monthly_means,
    read_seoul_observations,
    seoul_cells,
    summarise_series,
)


def read_settings(path: Path) -> list[str]:
    """The ``WHERE.NAME=VALUE`` lines of a settings file (``#`` starts a comment)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def apply_settings(settings: list[str]) -> None:
    """Override the twin's parameters for this process: ``world.NAME=literal``,
    ``archive.NAME=literal``, ``spread.KEY=number`` (a RANDOM_SPREAD entry) or
    ``bias.NAME=number`` (a BIASES entry).

    Processes forked afterwards inherit them; spawned ones must apply them again. A name the
    twin does not have, or a value that does not parse, is refused (``ValueError``) before
    anything is changed.
    """
    import ast

    from service.twin import archive, world

    modules = {"world": world, "archive": archive}
    tables = {"spread": world.RANDOM_SPREAD, "bias": world.BIASES}
    parsed: list[tuple[str, str, object]] = []
    for item in settings:
        target, sep, value = item.partition("=")
        where, _, name = target.strip().partition(".")
        known = (
            name in tables[where]
            if where in tables
            else where in modules and hasattr(modules[where], name)
        )
        if not sep or not known:
            raise ValueError(f"unknown twin setting {item!r} (WHERE.NAME=VALUE)")
        try:
            parsed.append(
                (where, name, float(value) if where in tables else ast.literal_eval(value.strip()))
            )
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"twin setting {item!r}: the value does not parse ({exc})") from exc
    for where, name, literal in parsed:
        if where in tables:
            tables[where][name] = literal
        else:
            setattr(modules[where], name, literal)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--set`` and ``--set-file`` options of the scripts that run the twin."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="WHERE.NAME=VALUE",
        help="override a twin parameter: world.NAME=literal, archive.NAME=literal, "
        "spread.KEY=number, bias.NAME=number",
    )
    parser.add_argument(
        "--set-file",
        type=Path,
        default=None,
        help="a file of --set values, one a line, applied before any --set "
        "(a candidate twin: scripts/twin_candidates/)",
    )


def settings_of(args: argparse.Namespace) -> list[str]:
    """The settings ``--set-file`` and ``--set`` ask for, the file's first."""
    return (read_settings(args.set_file) if args.set_file is not None else []) + args.set


def block_jobs(
    years: list[int], seed: int, settings: list[str], stride: int = 1, offset: int = 0
) -> list[tuple[int, dt.date, list[str]]]:
    """The 7-day blocks covering ``years`` (every ``stride``-th of each year, from ``offset``)."""
    jobs = []
    for year in years:
        b = block_start(dt.date(year, 1, 1))
        k = 0
        while b <= dt.date(year, 12, 31):
            if k % stride == offset:
                jobs.append((seed, b, settings))
            b += dt.timedelta(days=BLOCK_DAYS)
            k += 1
    return jobs


def fit_per_cell_line(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Intercept and slope of each cell's least-squares line ``analysis ~ a + b * CMAQ`` over
    (analysis, CMAQ) pairs of days."""
    zero = np.zeros_like(pairs[0][0], dtype=np.float64)
    sa = sum((a for a, _ in pairs), zero).sum(axis=0)
    sc = sum((c for _, c in pairs), zero).sum(axis=0)
    scc = sum((c * c for _, c in pairs), zero).sum(axis=0)
    sca = sum((c * a for a, c in pairs), zero).sum(axis=0)
    m = len(pairs) * pairs[0][0].shape[0]
    slope = (sca - sc * sa / m) / np.maximum(scc - sc * sc / m, 1e-9)
    return (sa - slope * sc) / m, slope


def scores(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """Hourly RMSE (pooled) and spatial RMSE (mean of each hour's RMSE over the cells) of
    (analysis, estimate) pairs of days."""
    per_hour = np.array([((c - a) ** 2).mean(axis=(1, 2)) for a, c in pairs])
    return float(per_hour.mean() ** 0.5), float(np.sqrt(per_hour).mean())


def _block(args: tuple[int, dt.date, list[str]]) -> list[tuple[dt.date, np.ndarray, np.ndarray]]:
    seed, start, settings = args
    apply_settings(settings)
    twin = Twin(GridSpec(), seed)
    srows, scols = twin._service_rows, twin._service_cols
    return [
        (f.day, f.analysis.astype(np.float32), f.cmaq["pm25"][:, srows, scols].astype(np.float32))
        for f in twin.simulate_block(start)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--years", type=int, nargs="+", default=[2019, 2020, 2021])
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    add_settings_arguments(parser)
    parser.add_argument(
        "--check-year",
        type=int,
        action="append",
        default=[],
        help="a year kept out of the calibration: simulated (the linear correction is scored on "
        "the last year) but its rows are not printed unless --show-check",
    )
    parser.add_argument("--show-check", action="store_true", help="print the check years too")
    parser.add_argument(
        "--seoul-csv",
        type=Path,
        default=None,
        help="Seoul's real hours (shared/data/seoul): also print the monthly means' correlation",
    )
    args = parser.parse_args()
    jobs = block_jobs(args.years, args.seed, settings_of(args), args.stride, args.offset)
    rows, cols = seoul_cells(Grid(GridSpec()))
    sums: dict[int, YearSums] = {}
    seoul: dict[int, list[np.ndarray]] = {}
    daylist: dict[int, list[dt.date]] = {}
    seen: set[dt.date] = set()
    fields: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    means: dict[int, list[tuple[float, float]]] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for days in pool.map(_block, jobs):
            for day, a, c in days:
                if day.year not in args.years or day in seen:
                    continue  # a block straddling two years is run for both: count it once
                seen.add(day)
                sums.setdefault(day.year, YearSums()).add(
                    a.astype(np.float64), c.astype(np.float64)
                )
                seoul.setdefault(day.year, []).append(a[:, rows, cols].mean(axis=1))
                daylist.setdefault(day.year, []).append(day)
                fields.setdefault(day.year, []).append((a, c))
                means.setdefault(day.year, []).append((float(a.mean()), float(c.mean())))
    k5 = max(1, round(5 / args.stride))
    print(f"stride {args.stride}: five worst ~ {k5} worst sampled days")
    print(
        "year days  mean   std   max  rmse  spat  bias  w5share  scale_rm  seoul_p99 ge75%"
        "  cstd-std"
    )
    hidden = set() if args.show_check else set(args.check_year)
    for year, y in sorted(sums.items()):
        if year in hidden:
            continue
        s = summarise_series(np.concatenate(seoul[year]))
        print(
            f"{year} {len(y.daily_sse):4d} {y.analysis_mean:5.1f} {y.analysis_std:5.1f} "
            f"{y.analysis_max:5.0f} {y.rmse:5.2f} {y.spatial_rmse:5.2f} "
            f"{y.cmaq_mean - y.analysis_mean:+5.2f} {y.worst_days_share(k5):7.3f} "
            f"{y.scale_removed:8.3f} {s.p99:8.1f} {s.ge75_percent:5.2f} "
            f"{y.cmaq_std - y.analysis_std:+8.2f}"
        )
    days_all = sorted(
        ((y.daily_sse[i], year, i) for year, y in sums.items() for i in range(len(y.daily_sse))),
        reverse=True,
    )
    for sse, year, i in [d for d in days_all if d[1] not in hidden][:8]:
        d = daylist[year][i]
        print(
            f"  worst: {d} rmse {np.sqrt(sse / sums[year].n * len(sums[year].daily_sse)):.1f} "
            f"a {means[year][i][0]:.1f} c {means[year][i][1]:.1f}"
        )
    # The per-cell linear correction a + b * CMAQ, fitted on every year but the last, scored on it.
    test_year = max(sums)
    if len(sums) < 2:
        print(f"linear per-cell correction: needs a second year to fit on (only {test_year} given)")
    else:
        a0, b = fit_per_cell_line(
            [(a, c) for y, v in fields.items() if y != test_year for a, c in v]
        )
        raw, raw_s = scores(fields[test_year])
        lin, lin_s = scores([(a, np.maximum(a0 + b * c, 0)) for a, c in fields[test_year]])
        if test_year in hidden:
            raw = lin = raw_s = lin_s = float("nan")
        print(
            f"linear per-cell correction on {test_year}: RMSE {raw:.2f} -> {lin:.2f} "
            f"({100 * (1 - lin / raw):.1f}% lower), spatial {raw_s:.2f} -> {lin_s:.2f} "
            f"({100 * (1 - lin_s / raw_s):.1f}% lower)"
        )
    shown = [np.concatenate(v) for y, v in seoul.items() if y not in hidden]
    allseoul = summarise_series(np.concatenate(shown))
    print(
        f"Seoul all: mean {allseoul.mean:.1f} p99 {allseoul.p99:.1f} "
        f"ge75 {allseoul.ge75_percent:.2f}% "
        f"lag1 {allseoul.lag1:.3f} lag24 {allseoul.lag24:.2f}"
    )
    if args.seoul_csv is not None:
        shown_years = sorted(y for y in seoul if y not in hidden)
        times = np.concatenate(
            [
                np.datetime64(d, "h") + np.arange(24)
                for y in shown_years
                for d in daylist[y]  # the analysis' 24 hours of each KST day
            ]
        )
        real = read_seoul_observations(
            args.seoul_csv, dt.date(shown_years[0], 1, 1), dt.date(shown_years[-1], 12, 31)
        )
        twin_months = monthly_means(times, np.concatenate(shown))
        corr = np.corrcoef(twin_months, monthly_means(real.times, real.values))[0, 1]
        print(f"Seoul monthly means {shown_years[0]}-{shown_years[-1]}: correlation {corr:.3f}")


if __name__ == "__main__":
    main()
