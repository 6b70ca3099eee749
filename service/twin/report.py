"""Measure a twin archive against its calibration targets; write a markdown report with plots.

Everything is read back through the service's own readers, so the report also proves the
archive is readable. Seoul is compared with the real hourly city-average observations of
2019-2022 (``../shared/data/seoul``).
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from service.errors import InputFileError
from service.grid import Grid
from service.ingest import read_analysis, read_cmaq
from service.settings import GridSpec
from service.stations import load_stations

F = npt.NDArray[np.float64]
SEOUL = "서울특별시"
DEFAULT_SEOUL_CSV = (
    Path(__file__).resolve().parents[2].parent
    / "shared/data/seoul/seoul_cityavg_hourly_2018_2022.csv"
)


@dataclass
class Target:
    """One calibration target: its name, the measured value, the rule and whether it holds."""

    name: str
    value: float
    rule: str
    ok: bool


def _lag_corr(x: F, lag: int) -> float:
    return float(np.corrcoef(x[:-lag], x[lag:])[0, 1])


def read_seoul_observations(path: Path, start: dt.date, end: dt.date) -> tuple[F, F]:
    """Real Seoul hourly PM2.5 as (hour-start times in KST as datetime64, values).

    The source stamps the *end* of the averaging hour; duplicates are dropped; missing values
    are NaN.
    """
    seen: dict[np.datetime64, float] = {}
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            end_time = dt.datetime.fromisoformat(row["time_kst"])
            begin = end_time - dt.timedelta(hours=1)
            if not (start <= begin.date() <= end):
                continue
            key = np.datetime64(begin.replace(tzinfo=None), "h")
            value = row["pm25_ugm3"].strip()
            seen.setdefault(key, float(value) if value else np.nan)
    times = np.array(sorted(seen))
    return times, np.array([seen[t] for t in times])


def _series_stats(x: F) -> dict[str, float]:
    x = x[np.isfinite(x)]
    return {
        "mean": float(x.mean()),
        "p99": float(np.percentile(x, 99)),
        "ge75": float((x >= 75).mean() * 100),
    }


def collect(archive: Path, start: dt.date, end: dt.date, service: GridSpec) -> dict[str, object]:
    """Read every day of the archive; gather the statistics the targets need."""
    grid = Grid(service)
    cells = [grid.cell_of(s.lat, s.lon) for s in load_stations() if s.sido == SEOUL]
    rows, cols = np.array([c for c in cells if c is not None]).T
    years: dict[int, dict[str, float]] = {}
    seoul_times, seoul_vals = [], []
    rmse_by_hour = np.zeros(24)
    hours_n = 0
    mean_map = np.zeros(grid.shape)
    days = 0
    jan9: dict[int, tuple[F, F]] = {}
    day = start
    skipped: dict[str, str] = {}
    while day <= end:
        tag = f"{day:%Y%m%d}"
        try:
            analysis = read_analysis(sorted((archive / "analysis" / tag).glob("*.nc")), day, grid)
            cmaq = read_cmaq(sorted((archive / "cmaq" / tag).glob("*.nc")), day, grid)
        except InputFileError as exc:  # the readers reject it: count it, say why, go on
            skipped[day.isoformat()] = str(exc)
            day += dt.timedelta(days=1)
            continue
        a = analysis.data["pm25"].values.astype(np.float64)
        c = cmaq.data["pm25"].values.astype(np.float64)
        y = years.setdefault(
            day.year,
            {
                "n": 0,
                "sum": 0.0,
                "sum2": 0.0,
                "max": 0.0,
                "csum": 0.0,
                "csum2": 0.0,
                "err2": 0.0,
                "bias": 0.0,
            },
        )
        y["n"] += a.size
        y["sum"] += a.sum()
        y["sum2"] += (a**2).sum()
        y["max"] = max(y["max"], float(a.max()))
        y["csum"] += c.sum()
        y["csum2"] += (c**2).sum()
        y["err2"] += ((c - a) ** 2).sum()
        rmse_by_hour += ((c - a) ** 2).mean(axis=(1, 2))
        hours_n += 1
        mean_map += a.mean(axis=0)
        days += 1
        start_kst = np.datetime64(dt.datetime.combine(day, dt.time(0)), "h")
        seoul_times.append(start_kst + np.arange(24))
        seoul_vals.append(a[:, rows, cols].mean(axis=1))
        if day.month == 1 and day.day == 9:
            jan9[day.year] = (a[12], c[12])
        day += dt.timedelta(days=1)
    return {
        "years": years,
        "seoul_times": np.concatenate(seoul_times),
        "seoul": np.concatenate(seoul_vals),
        "rmse_by_hour": np.sqrt(rmse_by_hour / max(hours_n, 1)),
        "mean_map": mean_map / max(days, 1),
        "jan9": jan9,
        "days": days,
        "skipped": skipped,
    }


def evaluate_targets(stats: dict[str, object], real: F | None) -> list[Target]:
    """Check every calibration target of the twin issue."""
    targets: list[Target] = []
    years: dict[int, dict[str, float]] = stats["years"]  # type: ignore[assignment]
    for year, y in sorted(years.items()):
        mean = y["sum"] / y["n"]
        std = np.sqrt(y["sum2"] / y["n"] - mean**2)
        cmean = y["csum"] / y["n"]
        cstd = np.sqrt(y["csum2"] / y["n"] - cmean**2)
        rmse = np.sqrt(y["err2"] / y["n"])
        targets += [
            Target(f"{year} analysis mean (grid)", mean, "10-18 ug/m3", 10 <= mean <= 18),
            Target(f"{year} analysis std (grid)", std, "9-17", 9 <= std <= 17),
            Target(f"{year} analysis max (grid)", y["max"], ">= 250", y["max"] >= 250),
            Target(f"{year} CMAQ hourly RMSE vs analysis", rmse, "9-12", 9 <= rmse <= 12),
            Target(f"{year} CMAQ mean bias", cmean - mean, "0 to +1.5", 0 <= cmean - mean <= 1.5),
            Target(f"{year} CMAQ std > analysis std", cstd - std, "> 0", cstd > std),
        ]
    seoul: F = stats["seoul"]  # type: ignore[assignment]
    s = _series_stats(seoul)
    targets += [
        Target("Seoul mean", s["mean"], "21.0 +- 20% (16.8-25.2)", 16.8 <= s["mean"] <= 25.2),
        Target(
            "Seoul 99th percentile",
            s["p99"],
            "81 +- 25% (60.75-101.25)",
            60.75 <= s["p99"] <= 101.25,
        ),
        Target(
            "Seoul hour-to-hour autocorrelation",
            _lag_corr(seoul, 1),
            ">= 0.95",
            _lag_corr(seoul, 1) >= 0.95,
        ),
        Target(
            "Seoul 24-hour autocorrelation",
            _lag_corr(seoul, 24),
            "0.3-0.7",
            0.3 <= _lag_corr(seoul, 24) <= 0.7,
        ),
        Target("Seoul hours >= 75 ug/m3 (%)", s["ge75"], "0.5-3", 0.5 <= s["ge75"] <= 3),
    ]
    if real is not None:
        synth_m = monthly_means(stats["seoul_times"], seoul)  # type: ignore[arg-type]
        corr = float(np.corrcoef(synth_m, real)[0, 1])
        targets.append(
            Target("Seoul monthly means, correlation with real", corr, ">= 0.8", corr >= 0.8)
        )
    return targets


def monthly_means(times: F, values: F) -> F:
    """Mean of each calendar month (1..12) over all years."""
    months = times.astype("datetime64[M]").astype(int) % 12
    return np.array([np.nanmean(values[months == m]) for m in range(12)])


def write_report(
    archive: Path,
    out: Path,
    start: dt.date,
    end: dt.date,
    seoul_csv: Path | None = None,
    service: GridSpec | None = None,
) -> tuple[Path, bool]:
    """Measure ``archive`` and write ``out/REPORT.md`` with PNG plots; return (path, all ok)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    service = service or GridSpec()
    out.mkdir(parents=True, exist_ok=True)
    stats = collect(archive, start, end, service)
    seoul_csv = seoul_csv or (DEFAULT_SEOUL_CSV if DEFAULT_SEOUL_CSV.exists() else None)
    real_monthly = real_stats = None
    real_series = None
    if seoul_csv is not None:
        rt, rv = read_seoul_observations(seoul_csv, start, end)
        real_monthly = monthly_means(rt, rv)
        real_stats = _series_stats(rv)
        finite = np.where(np.isfinite(rv), rv, np.nanmean(rv))
        real_stats["ac1"] = _lag_corr(finite, 1)
        real_stats["ac24"] = _lag_corr(finite, 24)
        real_series = (rt, rv)
    targets = evaluate_targets(stats, real_monthly)
    seoul: F = stats["seoul"]  # type: ignore[assignment]
    stimes: F = stats["seoul_times"]  # type: ignore[assignment]

    # Plots.
    months = np.arange(1, 13)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(months, monthly_means(stimes, seoul), "o-", label="twin analysis at Seoul (SYNTHETIC)")
    if real_monthly is not None:
        ax.plot(months, real_monthly, "s--", label="real Seoul observations")
    ax.set(
        xlabel="month", ylabel="PM2.5 (ug/m3)", title=f"Seoul monthly means {start.year}-{end.year}"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "seoul_monthly.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = [float(b) for b in np.arange(0, 200, 5)]
    ax.hist(seoul, bins=bins, density=True, alpha=0.6, label="twin (SYNTHETIC)")
    if real_series is not None:
        ax.hist(
            real_series[1][np.isfinite(real_series[1])],
            bins=bins,
            density=True,
            alpha=0.6,
            label="real",
        )
    ax.set(xlabel="hourly PM2.5 at Seoul (ug/m3)", ylabel="density", yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "seoul_histogram.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 3.5))
    sel = (stimes >= np.datetime64(f"{start.year}-01-01")) & (
        stimes < np.datetime64(f"{start.year}-04-01")
    )
    ax.plot(stimes[sel], seoul[sel], lw=0.7, label="twin (SYNTHETIC)")
    if real_series is not None:
        rsel = (real_series[0] >= np.datetime64(f"{start.year}-01-01")) & (
            real_series[0] < np.datetime64(f"{start.year}-04-01")
        )
        ax.plot(real_series[0][rsel], real_series[1][rsel], lw=0.7, alpha=0.7, label="real")
    ax.set(ylabel="PM2.5 (ug/m3)", title=f"Seoul, January-March {start.year}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "seoul_timeseries.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    mean_map: F = stats["mean_map"]  # type: ignore[assignment]
    im = axes[0].imshow(mean_map, origin="lower", cmap="magma_r")
    axes[0].set_title("mean analysis PM2.5 (SYNTHETIC)")
    fig.colorbar(im, ax=axes[0], shrink=0.8)
    jan9: dict[int, tuple[F, F]] = stats["jan9"]  # type: ignore[assignment]
    if jan9:
        year = min(jan9)
        a, c = jan9[year]
        vmax = float(max(a.max(), c.max()))
        axes[1].imshow(a, origin="lower", cmap="magma_r", vmin=0, vmax=vmax)
        axes[1].set_title(f"analysis {year}-01-09 12 KST")
        im2 = axes[2].imshow(c, origin="lower", cmap="magma_r", vmin=0, vmax=vmax)
        axes[2].set_title(f"CMAQ {year}-01-09 12 KST")
        fig.colorbar(im2, ax=axes[2], shrink=0.8)
    fig.tight_layout()
    fig.savefig(out / "maps.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(np.arange(24), stats["rmse_by_hour"], "o-")  # type: ignore[arg-type]
    ax.set(xlabel="forecast hour (KST)", ylabel="RMSE (ug/m3)", title="raw CMAQ vs analysis")
    fig.tight_layout()
    fig.savefig(out / "cmaq_rmse_by_hour.png", dpi=110)
    plt.close(fig)

    ok = all(t.ok for t in targets)
    lines = [
        "# The twin's calibration report (SYNTHETIC data)",
        "",
        f"Archive `{archive}`, target days {start} .. {end} ({stats['days']} days), "
        "read back through the service's own readers.",
        "",
        "Made with:",
        "",
        "```bash",
        f"pm25 twin --start {start} --end {end} --out {archive}",
        f"pm25 twin report {archive} --out {out} --start {start} --end {end}",
        "```",
        "",
        f"**{'Every target is met.' if ok else 'Some targets are missed (marked MISSED).'}**",
        "",
        *(
            [f"{len(stats['skipped'])} day(s) were rejected by the readers and left out:", ""]  # type: ignore[arg-type]
            + [f"- {d}: {why}" for d, why in stats["skipped"].items()]  # type: ignore[attr-defined]
            + [""]
            if stats["skipped"]
            else []
        ),
        "| target | measured | rule | |",
        "|---|---|---|---|",
        *[
            f"| {t.name} | {t.value:.3g} | {t.rule} | {'ok' if t.ok else 'MISSED'} |"
            for t in targets
        ],
        "",
    ]
    if real_stats is not None:
        s = _series_stats(seoul)
        lines += [
            "## Seoul: twin against the real observations",
            "",
            "| | twin (SYNTHETIC) | real |",
            "|---|---|---|",
            f"| mean | {s['mean']:.1f} | {real_stats['mean']:.1f} |",
            f"| 99th percentile | {s['p99']:.0f} | {real_stats['p99']:.0f} |",
            f"| hours >= 75 (%) | {s['ge75']:.2f} | {real_stats['ge75']:.2f} |",
            f"| lag-1 h autocorrelation | {_lag_corr(seoul, 1):.3f} | {real_stats['ac1']:.3f} |",
            f"| lag-24 h autocorrelation | {_lag_corr(seoul, 24):.2f} | {real_stats['ac24']:.2f} |",
            "",
            "Monthly means (Jan..Dec): twin "
            + ", ".join(f"{v:.1f}" for v in monthly_means(stimes, seoul))
            + "; real "
            + ", ".join(f"{v:.1f}" for v in real_monthly)  # type: ignore[union-attr]
            + ".",
            "",
        ]
    lines += [
        "![Seoul monthly](seoul_monthly.png)",
        "![Seoul histogram](seoul_histogram.png)",
        "![Seoul time series](seoul_timeseries.png)",
        "![maps](maps.png)",
        "![CMAQ RMSE by hour](cmaq_rmse_by_hour.png)",
        "",
        errors_doc(),
    ]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path, ok


def errors_doc() -> str:
    """What CMAQ gets wrong in the twin, from the parameters the world actually uses."""
    from service.twin.archive import PEAK_GAIN, PEAK_KNEE, PEAK_OFFSET, PEAK_SCALE
    from service.twin.world import RANDOM_SPREAD, systematic_errors

    b = systematic_errors()
    spread = "\n".join(f"- {name}: {value:g}" for name, value in RANDOM_SPREAD.items())
    return f"""## What CMAQ gets wrong in the twin, and what can be learned

The "CMAQ forecast" is the same world model run continuously on its own (it never sees
observations, as an operational CMAQ restarts from its previous forecast), driven by the
forecast weather that is also written to the WRF files. Its errors against the analysis have
two kinds of cause (`service/twin/world.py`: `systematic_errors`, `random_errors`).

**Systematic, visible in the model's own inputs (learnable):**
- urban emissions x{b.city_emission_bias:g} (the error grows with population: it depends on place,
  and shows in CO and NO2);
- industrial emissions (Pohang, Ulsan, Yeosu/Gwangyang, the west-coast power plants)
  x{b.industry_emission_bias:g} (visible through SO2);
- secondary PM2.5 formed x{b.humid_secondary_bias:g} as fast in humid air (humidity is an input);
- wet removal {b.washout_bias:g} times too weak (precipitation is an input);
- night-time boundary layer x{b.pbl_bias:g} as deep (hour of day, wind speed);
- peaks over-predicted: PM2.5 `p` comes out as
  `p + {PEAK_GAIN:g} p tanh(p/{PEAK_SCALE:g}) / (1 + p/{PEAK_KNEE:g}) - {PEAK_OFFSET:g}`,
  34-42% high between 100 and 300 ug/m3, less in relative terms beyond (23% at 600),
  and clean air slightly low (a function of CMAQ's own PM2.5, `overpredict_peaks` in
  `service/twin/archive.py`).

**Random, drawn afresh each day (noise to a model that sees only the forecast):**
{spread}

The analysis is made as the real product is: a CMAQ-style background (the same model driven
by the true weather, with its systematic biases) corrected toward observations at the 657
AirKorea stations (truth plus 8% and 1 ug/m3 noise, 4% missing) with Cressman weights of
radius 28 km. Far from stations (the sea, the edges) the analysis is that background, so
there only the random part of CMAQ's error remains.
"""
