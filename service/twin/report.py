"""Measure a twin archive against its calibration targets; write a markdown report with plots.

Everything is read back through the service's own readers, so the report also proves the
archive is readable. Seoul is compared with the real hourly city-average observations of
2019-2022 (``../shared/data/seoul``).
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from service.errors import InputFileError
from service.grid import Grid
from service.ingest import read_analysis, read_cmaq
from service.settings import GridSpec
from service.stations import load_stations

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from service.twin.archive import PeakShape

F = npt.NDArray[np.float64]
Times = npt.NDArray[np.datetime64]
SEOUL = "서울특별시"
DEFAULT_SEOUL_CSV = (
    Path(__file__).resolve().parents[2].parent
    / "shared/data/seoul/seoul_cityavg_hourly_2018_2022.csv"
)
#: Resolution of every figure of the report.
FIGURE_DPI = 110


@dataclass
class Target:
    """One calibration target: its name, the measured value, the rule and whether it holds."""

    name: str
    value: float
    rule: str
    ok: bool


@dataclass
class YearSums:
    """Running sums over one year's analysis and CMAQ values: means, spreads, RMSEs, shares."""

    n: int = 0
    analysis_sum: float = 0.0
    analysis_sum2: float = 0.0
    analysis_max: float = 0.0
    cmaq_sum: float = 0.0
    cmaq_sum2: float = 0.0
    error_sum2: float = 0.0
    spatial_rmse_sum: float = 0.0  # per-hour RMSE over the cells, summed over the day-hours
    spatial_n: int = 0
    daily_sse: list[float] = field(default_factory=list)
    daily_scaled_sse: list[float] = field(default_factory=list)

    def add(self, analysis: F, cmaq: F) -> None:
        """Count one day's hourly fields ``(24, rows, cols)``."""
        err2 = (cmaq - analysis) ** 2
        self.n += analysis.size
        self.analysis_sum += analysis.sum()
        self.analysis_sum2 += (analysis**2).sum()
        self.analysis_max = max(self.analysis_max, float(analysis.max()))
        self.cmaq_sum += cmaq.sum()
        self.cmaq_sum2 += (cmaq**2).sum()
        self.error_sum2 += err2.sum()
        self.spatial_rmse_sum += float(np.sqrt(err2.mean(axis=(1, 2))).sum())
        self.spatial_n += err2.shape[0]
        self.daily_sse.append(float(err2.sum()))
        # The diagnostic: CMAQ's field times the one number that fits the analysis best.
        ca, cc = float((cmaq * analysis).sum()), float((cmaq**2).sum())
        scale = ca / cc if cc > 0 else 1.0
        self.daily_scaled_sse.append(float(((scale * cmaq - analysis) ** 2).sum()))

    @property
    def analysis_mean(self) -> float:
        """Mean of the analysis over every cell and hour."""
        return self.analysis_sum / self.n

    @property
    def analysis_std(self) -> float:
        """Standard deviation of the analysis over every cell and hour."""
        return float(np.sqrt(self.analysis_sum2 / self.n - self.analysis_mean**2))

    @property
    def cmaq_mean(self) -> float:
        """Mean of CMAQ's PM2.5 over every cell and hour."""
        return self.cmaq_sum / self.n

    @property
    def cmaq_std(self) -> float:
        """Standard deviation of CMAQ's PM2.5 over every cell and hour."""
        return float(np.sqrt(self.cmaq_sum2 / self.n - self.cmaq_mean**2))

    @property
    def rmse(self) -> float:
        """Hourly RMSE of CMAQ against the analysis."""
        return float(np.sqrt(self.error_sum2 / self.n))

    @property
    def spatial_rmse(self) -> float:
        """The paper's spatial RMSE: RMSE over the cells at each hour, averaged over hours."""
        return self.spatial_rmse_sum / max(self.spatial_n, 1)

    def worst_days_share(self, k: int = 5) -> float:
        """Share of the year's CMAQ squared error held by its ``k`` worst days."""
        sse = np.sort(np.array(self.daily_sse))[::-1]
        return float(sse[:k].sum() / max(sse.sum(), 1e-12))

    @property
    def scale_removed(self) -> float:
        """Share of CMAQ's mean squared error removed by scaling each day's field by one number.

        A diagnostic only (the number is fitted on the analysis): a real CMAQ's error is mostly
        in where and when, not in one level per day.
        """
        return 1.0 - sum(self.daily_scaled_sse) / max(sum(self.daily_sse), 1e-12)


@dataclass
class ArchiveStats:
    """What :func:`collect` measures in an archive: everything the targets and figures need.

    Attributes
    ----------
    years
        Running sums of each calendar year.
    seoul_times, seoul
        Hour-start times (KST, naive ``datetime64[h]``) and the analysis averaged over the
        cells of Seoul's stations.
    rmse_by_hour
        RMSE of CMAQ against the analysis at each of the 24 hours (KST).
    mean_map
        Mean analysis of every cell.
    jan9_noon
        Analysis and CMAQ maps at 12 KST on 9 January, by year.
    days
        Days read.
    skipped
        Days the readers rejected (ISO date), with the reason.
    """

    years: dict[int, YearSums]
    seoul_times: Times
    seoul: F
    rmse_by_hour: F
    mean_map: F
    jan9_noon: dict[int, tuple[F, F]] = field(default_factory=dict)
    days: int = 0
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SeriesSummary:
    """Hourly PM2.5 at Seoul in five numbers.

    The mean, the 99th percentile and the share of hours at or above 75 ug/m3 count the
    finite hours only; the autocorrelations are of the series as given.
    """

    mean: float
    p99: float
    ge75_percent: float
    lag1: float
    lag24: float


@dataclass(frozen=True)
class SeoulObservations:
    """Real hourly PM2.5 at Seoul: hour-start times (KST, naive) and values (NaN if missing)."""

    times: Times
    values: F

    @property
    def summary(self) -> SeriesSummary:
        """The five numbers; the autocorrelations fill missing hours with the mean."""
        return summarise_series(self.values, fill_gaps=True)

    @property
    def monthly(self) -> F:
        """Mean of each calendar month (1..12)."""
        return monthly_means(self.times, self.values)


def _lag_corr(x: F, lag: int) -> float:
    return float(np.corrcoef(x[:-lag], x[lag:])[0, 1])


def summarise_series(values: F, *, fill_gaps: bool = False) -> SeriesSummary:
    """Summarise an hourly series; with ``fill_gaps`` NaNs become the mean for the lags."""
    finite = values[np.isfinite(values)]
    lagged = np.where(np.isfinite(values), values, np.nanmean(values)) if fill_gaps else values
    return SeriesSummary(
        mean=float(finite.mean()),
        p99=float(np.percentile(finite, 99)),
        ge75_percent=float((finite >= 75).mean() * 100),
        lag1=_lag_corr(lagged, 1),
        lag24=_lag_corr(lagged, 24),
    )


def read_seoul_observations(path: Path, start: dt.date, end: dt.date) -> SeoulObservations:
    """Real Seoul hourly PM2.5 of the hours starting in ``start..end`` (KST).

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
    return SeoulObservations(times, np.array([seen[t] for t in times]))


def seoul_cells(grid: Grid) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Rows and columns of the cells holding Seoul's AirKorea stations."""
    cells = [grid.cell_of(s.lat, s.lon) for s in load_stations() if s.sido == SEOUL]
    rows, cols = np.array([c for c in cells if c is not None]).T
    return rows, cols


def collect(archive: Path, start: dt.date, end: dt.date, service: GridSpec) -> ArchiveStats:
    """Read every day of the archive; gather the statistics the targets need."""
    grid = Grid(service)
    rows, cols = seoul_cells(grid)
    years: dict[int, YearSums] = {}
    seoul_times, seoul_vals = [], []
    rmse_by_hour = np.zeros(24)
    hours_n = 0
    mean_map = np.zeros(grid.shape)
    days = 0
    jan9_noon: dict[int, tuple[F, F]] = {}
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
        years.setdefault(day.year, YearSums()).add(a, c)
        rmse_by_hour += ((c - a) ** 2).mean(axis=(1, 2))
        hours_n += 1
        mean_map += a.mean(axis=0)
        days += 1
        start_kst = np.datetime64(dt.datetime.combine(day, dt.time(0)), "h")
        seoul_times.append(start_kst + np.arange(24))
        seoul_vals.append(a[:, rows, cols].mean(axis=1))
        if day.month == 1 and day.day == 9:
            jan9_noon[day.year] = (a[12], c[12])
        day += dt.timedelta(days=1)
    return ArchiveStats(
        years=years,
        seoul_times=np.concatenate(seoul_times),
        seoul=np.concatenate(seoul_vals),
        rmse_by_hour=np.sqrt(rmse_by_hour / max(hours_n, 1)),
        mean_map=mean_map / max(days, 1),
        jan9_noon=jan9_noon,
        days=days,
        skipped=skipped,
    )


#: Limits of the calibration targets (twin issues 1-3): Seoul's real 99th percentile and the
#: allowed relative departure, the band of hours >= 75 ug/m3 (%), the most the five worst days
#: may hold of a year's CMAQ squared error, and the most a per-day scale may remove of it.
SEOUL_P99_REAL, SEOUL_P99_TOLERANCE = 81.0, 0.15
SEOUL_GE75_BAND = (1.0, 2.0)
WORST_DAYS, WORST_DAYS_MAX_SHARE = 5, 0.20
SCALE_REMOVED_MAX = 0.40


@dataclass(frozen=True)
class Period:
    """A named set of years the Seoul targets are checked on (calibration or check)."""

    name: str
    years: tuple[int, ...]

    @property
    def label(self) -> str:
        """``2019-2021`` or ``2022``."""
        first, last = min(self.years), max(self.years)
        return f"{first}" if first == last else f"{first}-{last}"


def periods_of(years: list[int], check_years: tuple[int, ...] = ()) -> list[Period]:
    """The calibration period (years not kept for the check) and the check period, if any."""
    calibration = tuple(y for y in sorted(years) if y not in check_years)
    check = tuple(y for y in sorted(years) if y in check_years)
    out = [Period("calibration", calibration)] if calibration else []
    return out + ([Period("check", check)] if check else [])


def _year_targets(year: int, y: YearSums) -> list[Target]:
    mean, std, rmse = y.analysis_mean, y.analysis_std, y.rmse
    bias, spatial = y.cmaq_mean - mean, y.spatial_rmse
    share, removed = y.worst_days_share(WORST_DAYS), y.scale_removed
    return [
        Target(f"{year} analysis mean (grid)", mean, "10-18 ug/m3", 10 <= mean <= 18),
        Target(f"{year} analysis std (grid)", std, "9-17", 9 <= std <= 17),
        Target(f"{year} analysis max (grid)", y.analysis_max, ">= 250", y.analysis_max >= 250),
        Target(f"{year} CMAQ hourly RMSE vs analysis", rmse, "9-12", 9 <= rmse <= 12),
        Target(f"{year} CMAQ spatial RMSE vs analysis", spatial, "7.5-9.5", 7.5 <= spatial <= 9.5),
        Target(f"{year} CMAQ mean bias", bias, "0 to +1.5", 0 <= bias <= 1.5),
        Target(f"{year} CMAQ std > analysis std", y.cmaq_std - std, "> 0", y.cmaq_std > std),
        Target(
            f"{year} share of CMAQ squared error in the {WORST_DAYS} worst days",
            share,
            f"<= {WORST_DAYS_MAX_SHARE:g}",
            share <= WORST_DAYS_MAX_SHARE,
        ),
        Target(
            f"{year} CMAQ MSE removed by one scale per day (diagnostic)",
            removed,
            f"<= {SCALE_REMOVED_MAX:g}",
            removed <= SCALE_REMOVED_MAX,
        ),
    ]


def _seoul_targets(
    prefix: str, times: Times, values: F, real: SeoulObservations | None, years: tuple[int, ...]
) -> list[Target]:
    s = summarise_series(values)
    low, high = (
        SEOUL_P99_REAL * (1 - SEOUL_P99_TOLERANCE),
        SEOUL_P99_REAL * (1 + SEOUL_P99_TOLERANCE),
    )
    g_low, g_high = SEOUL_GE75_BAND
    targets = [
        Target(f"{prefix}Seoul mean", s.mean, "21.0 +- 20% (16.8-25.2)", 16.8 <= s.mean <= 25.2),
        Target(
            f"{prefix}Seoul 99th percentile",
            s.p99,
            f"{SEOUL_P99_REAL:g} +- {SEOUL_P99_TOLERANCE:.0%} ({low:.2f}-{high:.2f})",
            low <= s.p99 <= high,
        ),
        Target(f"{prefix}Seoul hour-to-hour autocorrelation", s.lag1, ">= 0.95", s.lag1 >= 0.95),
        Target(f"{prefix}Seoul 24-hour autocorrelation", s.lag24, "0.3-0.7", 0.3 <= s.lag24 <= 0.7),
        Target(
            f"{prefix}Seoul hours >= 75 ug/m3 (%)",
            s.ge75_percent,
            f"{g_low:g}-{g_high:g}",
            g_low <= s.ge75_percent <= g_high,
        ),
    ]
    if real is not None:
        real_sel = _in_years(real.times, years)
        corr = float(
            np.corrcoef(
                monthly_means(times, values),
                monthly_means(real.times[real_sel], real.values[real_sel]),
            )[0, 1]
        )
        targets.append(
            Target(
                f"{prefix}Seoul monthly means, correlation with real", corr, ">= 0.8", corr >= 0.8
            )
        )
    return targets


def _in_years(times: Times, years: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    """Which of ``times`` fall in the calendar ``years``."""
    return np.isin(times.astype("datetime64[Y]").astype(int) + 1970, years)


def evaluate_targets(
    stats: ArchiveStats,
    real: SeoulObservations | None,
    check_years: tuple[int, ...] = (),
) -> list[Target]:
    """Check every calibration target of the twin issues.

    The yearly targets are checked on each year; Seoul's on the calibration years together
    and, apart, on the ``check_years`` (kept out of the calibration).
    """
    targets: list[Target] = []
    for year, y in sorted(stats.years.items()):
        targets += _year_targets(year, y)
    periods = periods_of(sorted(stats.years), check_years)
    for period in periods:
        sel = _in_years(stats.seoul_times, period.years)
        prefix = f"{period.label} " if len(periods) > 1 else ""
        targets += _seoul_targets(
            prefix, stats.seoul_times[sel], stats.seoul[sel], real, period.years
        )
    return targets


def monthly_means(times: Times, values: F) -> F:
    """Mean of each calendar month (1..12) over all years."""
    months = times.astype("datetime64[M]").astype(int) % 12
    return np.array([np.nanmean(values[months == m]) for m in range(12)])


# -- figures: each writes one PNG into ``out`` and returns its markdown image line -----------


def _save(fig: Figure, path: Path, alt: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.close(fig)
    return f"![{alt}]({path.name})"


def plot_seoul_monthly(
    out: Path, stats: ArchiveStats, real: SeoulObservations | None, start: dt.date, end: dt.date
) -> str:
    """Monthly means at Seoul, twin and real."""
    import matplotlib.pyplot as plt

    months = np.arange(1, 13)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    twin_monthly = monthly_means(stats.seoul_times, stats.seoul)
    ax.plot(months, twin_monthly, "o-", label="twin analysis at Seoul (SYNTHETIC)")
    if real is not None:
        ax.plot(months, real.monthly, "s--", label="real Seoul observations")
    ax.set(
        xlabel="month", ylabel="PM2.5 (ug/m3)", title=f"Seoul monthly means {start.year}-{end.year}"
    )
    ax.legend()
    return _save(fig, out / "seoul_monthly.png", "Seoul monthly")


def plot_seoul_histogram(out: Path, stats: ArchiveStats, real: SeoulObservations | None) -> str:
    """Distribution of hourly PM2.5 at Seoul, twin and real (log density)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = [float(b) for b in np.arange(0, 200, 5)]
    ax.hist(stats.seoul, bins=bins, density=True, alpha=0.6, label="twin (SYNTHETIC)")
    if real is not None:
        measured = real.values[np.isfinite(real.values)]
        ax.hist(measured, bins=bins, density=True, alpha=0.6, label="real")
    ax.set(xlabel="hourly PM2.5 at Seoul (ug/m3)", ylabel="density", yscale="log")
    ax.legend()
    return _save(fig, out / "seoul_histogram.png", "Seoul histogram")


def plot_seoul_timeseries(
    out: Path, stats: ArchiveStats, real: SeoulObservations | None, year: int
) -> str:
    """Hourly PM2.5 at Seoul over January-March of ``year``, twin and real."""
    import matplotlib.pyplot as plt

    first, stop = np.datetime64(f"{year}-01-01"), np.datetime64(f"{year}-04-01")
    fig, ax = plt.subplots(figsize=(9, 3.5))
    sel = (stats.seoul_times >= first) & (stats.seoul_times < stop)
    ax.plot(stats.seoul_times[sel], stats.seoul[sel], lw=0.7, label="twin (SYNTHETIC)")
    if real is not None:
        rsel = (real.times >= first) & (real.times < stop)
        ax.plot(real.times[rsel], real.values[rsel], lw=0.7, alpha=0.7, label="real")
    ax.set(ylabel="PM2.5 (ug/m3)", title=f"Seoul, January-March {year}")
    ax.legend()
    return _save(fig, out / "seoul_timeseries.png", "Seoul time series")


def plot_maps(out: Path, stats: ArchiveStats) -> str:
    """The mean analysis, and analysis and CMAQ at 12 KST on 9 January of the first year."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    im = axes[0].imshow(stats.mean_map, origin="lower", cmap="magma_r")
    axes[0].set_title("mean analysis PM2.5 (SYNTHETIC)")
    fig.colorbar(im, ax=axes[0], shrink=0.8)
    if stats.jan9_noon:
        year = min(stats.jan9_noon)
        a, c = stats.jan9_noon[year]
        vmax = float(max(a.max(), c.max()))
        axes[1].imshow(a, origin="lower", cmap="magma_r", vmin=0, vmax=vmax)
        axes[1].set_title(f"analysis {year}-01-09 12 KST")
        im2 = axes[2].imshow(c, origin="lower", cmap="magma_r", vmin=0, vmax=vmax)
        axes[2].set_title(f"CMAQ {year}-01-09 12 KST")
        fig.colorbar(im2, ax=axes[2], shrink=0.8)
    return _save(fig, out / "maps.png", "maps")


def plot_cmaq_rmse_by_hour(out: Path, stats: ArchiveStats) -> str:
    """RMSE of raw CMAQ against the analysis at each hour of the day."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(np.arange(24), stats.rmse_by_hour, "o-")
    ax.set(xlabel="forecast hour (KST)", ylabel="RMSE (ug/m3)", title="raw CMAQ vs analysis")
    return _save(fig, out / "cmaq_rmse_by_hour.png", "CMAQ RMSE by hour")


# -- markdown -------------------------------------------------------------------------------


def _skipped_section(skipped: dict[str, str]) -> list[str]:
    if not skipped:
        return []
    return [
        f"{len(skipped)} day(s) were rejected by the readers and left out:",
        "",
        *[f"- {day}: {why}" for day, why in skipped.items()],
        "",
    ]


def _targets_table(targets: list[Target]) -> list[str]:
    return [
        "| target | measured | rule | |",
        "|---|---|---|---|",
        *[
            f"| {t.name} | {t.value:.3g} | {t.rule} | {'ok' if t.ok else 'MISSED'} |"
            for t in targets
        ],
        "",
    ]


def _seoul_comparison(stats: ArchiveStats, real: SeoulObservations) -> list[str]:
    twin, measured = summarise_series(stats.seoul), real.summary
    twin_monthly = monthly_means(stats.seoul_times, stats.seoul)
    return [
        "## Seoul: twin against the real observations",
        "",
        "| | twin (SYNTHETIC) | real |",
        "|---|---|---|",
        f"| mean | {twin.mean:.1f} | {measured.mean:.1f} |",
        f"| 99th percentile | {twin.p99:.0f} | {measured.p99:.0f} |",
        f"| hours >= 75 (%) | {twin.ge75_percent:.2f} | {measured.ge75_percent:.2f} |",
        f"| lag-1 h autocorrelation | {twin.lag1:.3f} | {measured.lag1:.3f} |",
        f"| lag-24 h autocorrelation | {twin.lag24:.2f} | {measured.lag24:.2f} |",
        "",
        "Monthly means (Jan..Dec): twin "
        + ", ".join(f"{v:.1f}" for v in twin_monthly)
        + "; real "
        + ", ".join(f"{v:.1f}" for v in real.monthly)
        + ".",
        "",
    ]


def write_report(
    archive: Path,
    out: Path,
    start: dt.date,
    end: dt.date,
    seoul_csv: Path | None = None,
    service: GridSpec | None = None,
    *,
    check_years: tuple[int, ...] = (),
    seed: int = 0,
) -> tuple[Path, bool]:
    """Measure ``archive`` and write ``out/REPORT.md`` with PNG plots.

    Parameters
    ----------
    archive
        The twin archive (an inbox folder).
    out
        Folder for the report and its figures.
    start, end
        The target days to measure (inclusive).
    seoul_csv
        Seoul's real hourly observations (default: ``DEFAULT_SEOUL_CSV`` where it exists).
    service
        The service grid (default: the settings' grid).
    check_years
        Years kept out of the calibration: Seoul's targets are checked on them apart.
    seed
        The archive's seed, to list the episodes the world drew for each year.

    Returns
    -------
    tuple of Path and bool
        The report's path and whether every target is met.
    """
    import matplotlib

    matplotlib.use("Agg")

    out.mkdir(parents=True, exist_ok=True)
    service = service or GridSpec()
    stats = collect(archive, start, end, service)
    seoul_csv = seoul_csv or (DEFAULT_SEOUL_CSV if DEFAULT_SEOUL_CSV.exists() else None)
    real = read_seoul_observations(seoul_csv, start, end) if seoul_csv is not None else None
    targets = evaluate_targets(stats, real, check_years)
    figures = [
        plot_seoul_monthly(out, stats, real, start, end),
        plot_seoul_histogram(out, stats, real),
        plot_seoul_timeseries(out, stats, real, start.year),
        plot_maps(out, stats),
        plot_cmaq_rmse_by_hour(out, stats),
    ]
    ok = all(t.ok for t in targets)
    lines = [
        "# The twin's calibration report (SYNTHETIC data)",
        "",
        f"Archive `{archive}`, target days {start} .. {end} ({stats.days} days), "
        "read back through the service's own readers.",
        "",
        "Made with:",
        "",
        "```bash",
        f"pm25 twin --start {start} --end {end} --out {archive}",
        f"pm25 twin report {archive} --out {out} --start {start} --end {end}"
        + "".join(f" --check-year {y}" for y in check_years)
        + (f" --seed {seed}" if seed else ""),
        "```",
        "",
        *_periods_line(periods_of(sorted(stats.years), check_years)),
        f"**{'Every target is met.' if ok else 'Some targets are missed (marked MISSED).'}**",
        "",
        *_skipped_section(stats.skipped),
        *_targets_table(targets),
        *(_seoul_comparison(stats, real) if real is not None else []),
        *figures,
        "",
        *episodes_section(service, seed, sorted(stats.years)),
        errors_doc(),
    ]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path, ok


def _periods_line(periods: list[Period]) -> list[str]:
    if len(periods) < 2:
        return []
    text = "; ".join(f"{p.name}: {p.label}" for p in periods)
    return [
        f"Periods ({text}). The calibration targets are set on the calibration years; the "
        "check years are reported apart, as data the calibration should not be tuned to.",
        "",
    ]


def episodes_section(service: GridSpec, seed: int, years: list[int]) -> list[str]:
    """The transboundary and dust episodes the world drew for each year (dates in KST)."""
    from service.timeaxis import KST
    from service.twin.world import EPOCH, World

    world = World(service, seed)
    lines = [
        f"## Episodes drawn for each year (seed {seed})",
        "",
        "Dates, strengths (ug/m3 added to the inflow at the peak), durations and tracks (the "
        "bearing the plume comes from: 270 west, 315 north-west) are drawn afresh each year.",
        "",
        "| year | haze episodes | strongest (start KST, ug/m3, h, bearing) | dust episodes |",
        "|---|---|---|---|",
    ]
    for year in years:
        eps = world.episodes(year)
        haze = [e for e in eps if not e.dust]
        dust = [e for e in eps if e.dust]
        top = max(haze, key=lambda e: e.amplitude)
        when = (EPOCH + dt.timedelta(hours=top.start)).astimezone(KST)
        lines.append(
            f"| {year} | {len(haze)} | {when:%Y-%m-%d %H}h, {top.amplitude:.0f}, "
            f"{top.hours:.0f}, {top.bearing_deg:.0f} | {len(dust)} |"
        )
    return [*lines, ""]


def _peak_formula(shape: PeakShape) -> str:
    """A peak over-prediction (:func:`service.twin.archive.peak_excess`) as a formula in ``p``."""
    gain, scale, knee, _ = shape
    return f"`p + {gain:g} p tanh(p/{scale:g}) / (1 + p/{knee:g})`"


def errors_doc() -> str:
    """What CMAQ gets wrong in the twin, from the parameters the world actually uses."""
    from service.twin.archive import (
        ANALYSIS_LOG_SD,
        ANALYSIS_SCALE,
        BACKGROUND_PEAK,
        OBS_ABSOLUTE_SD,
        OBS_MISSING,
        OBS_RELATIVE_SD,
        PROCESS_LOG_SD,
        PROCESS_SCALE,
        forecast_peak,
        peak_excess,
    )
    from service.twin.world import (
        EMISSION_SCALE_BOUNDS,
        RANDOM_SPREAD,
        TRUE_EMISSION_LOG_SD,
        WIND_SCALE_MEAN,
        systematic_errors,
    )

    b = systematic_errors()
    spread = "\n".join(f"- {name}: {value:g}" for name, value in RANDOM_SPREAD.items())
    high = ", ".join(f"{100 * peak_excess(p) / p:.0f}% at {p:g}" for p in (50, 100, 300, 600))
    inflow = (
        f"\n- transboundary episodes x{b.inflow_bias:g} as strong (the global forecast's boundary"
        "\n  conditions; the reanalysis has its own): the plumes enter at edges the inputs show;"
        if b.inflow_bias != 1.0
        else ""
    )
    wind = (
        f"\n- the forecast weather's winds x{WIND_SCALE_MEAN:g} as fast on average (WRF's own winds"
        "\n  are an input; the reanalysis has the true ones): stagnation over-stated;"
        if WIND_SCALE_MEAN != 1.0
        else ""
    )
    reanalysis = ""
    if ANALYSIS_LOG_SD > 0.0:
        reanalysis = (
            "\nThere the analysis also carries the background's own errors, independent of the"
            "\nforecast's: a smooth"
            f"\nrandom lognormal map drifting through the day (log-sd {ANALYSIS_LOG_SD:g} in clean"
            f"\nair, shrinking as `1/(1 + p/{ANALYSIS_SCALE:g})`, so they level off near"
            f"\n{ANALYSIS_LOG_SD * ANALYSIS_SCALE:g} ug/m3): a reanalysis is a model too."
        )
    if BACKGROUND_PEAK is not None:
        reanalysis += (
            f"\nIt over-predicts peaks less than the forecast: {_peak_formula(BACKGROUND_PEAK)},"
            f" less {BACKGROUND_PEAK[3]:g}."
        )
    observation_noise = (
        f"{OBS_RELATIVE_SD:.0%} and {OBS_ABSOLUTE_SD:g} ug/m3 noise, {OBS_MISSING:.0%} missing"
    )
    lo, hi = EMISSION_SCALE_BOUNDS
    return f"""## What CMAQ gets wrong in the twin, and what can be learned

The "CMAQ forecast" is the same world model run continuously on its own: it never restarts from
the truth or the analysis and never sees observations (each day starts from its own forecast of
the day before, as an operational CMAQ without chemical data assimilation does), driven by the
forecast weather that is also written to the WRF files. Its errors against the analysis have
two kinds of cause (`service/twin/world.py`: `systematic_errors`, `random_errors`;
`service/twin/archive.py`: `overpredict_peaks`, `process_error`).

**Systematic, visible in the model's own inputs (learnable):**
- urban emissions x{b.city_emission_bias:g} (the error grows with population: it depends on place,
  and shows in CO and NO2);
- industrial emissions (Pohang, Ulsan, Yeosu/Gwangyang, the west-coast power plants)
  x{b.industry_emission_bias:g} (visible through SO2);
- secondary PM2.5 formed x{b.humid_secondary_bias:g} as fast in humid air (humidity is an input);
- wet removal {b.washout_bias:g} times too weak (precipitation is an input);
- night-time boundary layer x{b.pbl_bias:g} as deep (hour of day, wind speed);{inflow}{wind}
- peaks over-predicted: PM2.5 `p` comes out as
  {_peak_formula(forecast_peak())} ({high} high):
  a function of CMAQ's own PM2.5.

**Random, drawn afresh each day (noise to a model that sees only the forecast):**
{spread}

The domain-wide emission factor is bounded to {lo:g}-{hi:g}, so that no single day's level
dominates a year's error. The local emission and secondary-formation maps drift from one random
map at 00 KST to another at 23 KST. On top, CMAQ's aerosol processes err by a smooth random
lognormal map drifting through the day (log-sd {PROCESS_LOG_SD:g} in clean air, shrinking as
`1/sqrt(1 + p/{PROCESS_SCALE:g})`): large relative errors in clean air, larger absolute ones in
polluted air; CMAQ's NO2, CO and SO2 move by the same factor, so its own gases cannot reveal it.
The true emissions also vary from day to day by a smooth local map no inventory knows (log-sd
{TRUE_EMISSION_LOG_SD:g}); CMAQ runs on their climatology.
Episodes (transboundary haze and spring dust) are drawn afresh each year, with their own dates,
strengths, durations and tracks (the table above); CMAQ gets their timing, strength and track
slightly wrong each day.

The analysis is made as the real product is: a CMAQ-style background (the same model driven
by the true weather, with its systematic biases) corrected toward observations at the 657
AirKorea stations (truth plus {observation_noise}) with Cressman weights of
radius 28 km. Far from stations (the sea, the edges) the analysis is that background, so
there only the random part of CMAQ's error remains.{reanalysis}
"""
