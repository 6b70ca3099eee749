"""The twin's archive: run the world and write each day's CMAQ, WRF and analysis files.

For every target day D (KST):

* the **truth** is the world itself, run continuously in blocks of 7 days, each started 3 days
  early from clean air, so that any day's files depend only on the seed and the day: writing
  a sub-range gives the same files as writing the whole range;
* the **CMAQ forecast** is the same world model run beside the truth over the same block,
  from the same clean start. It never restarts from the truth or the analysis and never sees
  observations: like an operational CMAQ without chemical data assimilation, each day starts
  from its own forecast of the day before (decided for the third calibration: restarting from
  the truth would remove the errors that build up over days, which a real CMAQ has). Each hour
  is driven by the forecast weather of the KST day it belongs to (that day's random errors and
  the fixed biases of :func:`random_errors`); it over-predicts peaks as chemistry models tend
  to;
* the **WRF forecast** is the weather that drove the CMAQ forecast, initialised at D-1 00 UTC
  (25 hourly records from D-1 14 UTC, rain accumulated since the initial time);
* the **analysis** is a CMAQ-style background (the same model run beside the truth with the
  true weather and only the fixed biases, but the boundary inflow of a global reanalysis
  rather than of the forecast, and peaks over-predicted less) corrected toward synthetic
  observations at the 657 AirKorea stations (truth plus noise, some missing) with Cressman
  weights of radius 28 km.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from service.grid import Grid
from service.ingest.common import forecast_hours
from service.settings import GridSpec
from service.stations import load_stations
from service.twin.domains import PARENT_COL_MARGIN, PARENT_ROW_MARGIN, parent_spec
from service.twin.files import CmaqStyle, write_analysis_file, write_cmaq_file, write_wrf_file
from service.twin.world import (
    GAS_FLOOR_PPM,
    Errors,
    World,
    random_errors,
    reanalysis_errors,
    true_variability,
)

F = npt.NDArray[np.float64]
BLOCK_DAYS = 7
SPINUP_DAYS = 3
EPOCH_DAY = dt.date(2000, 1, 3)
WRF_LEAD_H = 15  # the WRF forecast starts at D-1 00 UTC (09 KST), 15 hours before D begins
WRF_MARGIN = 3  # WRF domain cells beyond the CMAQ parent grid on each side
CRESSMAN_RADIUS_M = 28_000.0
OBS_MISSING = 0.04
#: The station observations' error (see :meth:`Twin.analysis`): relative and absolute standard
#: deviations (ug/m3) of an hourly, independent error of each station's measurement.
OBS_RELATIVE_SD, OBS_ABSOLUTE_SD = 0.08, 1.0
#: CMAQ's peak over-prediction (see :func:`overpredict_peaks`): relative gain, the ug/m3 at
#: which it sets in, the ug/m3 beyond which it levels off, and the clean-air offset.
PEAK_GAIN, PEAK_SCALE, PEAK_KNEE, PEAK_OFFSET = 0.5, 30.0, 40.0, 2.5
#: Gain, scale, knee and offset of a peak over-prediction (:func:`peak_excess`).
PeakShape = tuple[float, float, float, float]
#: The same for the analysis background, or None for the forecast's (:func:`forecast_peak`).
BACKGROUND_PEAK: PeakShape | None = (0.1, 60.0, 500.0, 0.5)
#: CMAQ's process error (see :func:`process_error`): log-standard deviation in clean air, the
#: ug/m3 over which it shrinks, and the correlation length of its maps in parent-grid cells.
PROCESS_LOG_SD, PROCESS_SCALE, PROCESS_CELLS = 0.5, 25.0, 5.0
#: The analysis background's own error (see :func:`analysis_error`): log-standard deviation in
#: clean air and the ug/m3 over which it shrinks. The reanalysis is a model too, with errors of
#: its own wherever no station corrects it, independent of the forecast's (fourth calibration:
#: without them, far from stations the analysis is a noise-free model run that a network learns
#: to reproduce far better than a real one could; docs/model/NOTES.md).
ANALYSIS_LOG_SD, ANALYSIS_SCALE = 0.5, 25.0
#: The gases the process error also moves (their part above the clean-air floor), so that
#: CMAQ's own gases cannot reveal it.
PROCESS_GASES: dict[str, float] = dict(GAS_FLOOR_PPM)


def forecast_peak() -> PeakShape:
    """The forecast's peak over-prediction: gain, scale, knee and offset (``PEAK_*``)."""
    return PEAK_GAIN, PEAK_SCALE, PEAK_KNEE, PEAK_OFFSET


def peak_excess(pm25: F | float, shape: PeakShape | None = None) -> F | float:
    """How much CMAQ adds to PM2.5 ``pm25`` (ug/m3): nothing in clean air, a little at peaks."""
    gain, scale, knee, _ = shape or forecast_peak()
    return gain * pm25 * np.tanh(pm25 / scale) / (1.0 + pm25 / knee)


def overpredict_peaks(cmaq: dict[str, F], shape: PeakShape | None = None) -> None:
    """Chemistry models over-predict peaks (:func:`peak_excess`; PM10 follows).

    The relative excess grows with PM2.5 up to about the knee and falls again in the most
    extreme hours; the offset is taken off everywhere. ``shape`` defaults to the forecast's
    (:func:`forecast_peak`); the analysis background has its own (:data:`BACKGROUND_PEAK`).
    """
    shape = shape or forecast_peak()
    pm25 = cmaq["pm25"]
    boosted = np.maximum(pm25 + peak_excess(pm25, shape) - shape[3], 0.05 * pm25)
    if "pm10" in cmaq:
        cmaq["pm10"] = cmaq["pm10"] + (boosted - pm25)
    cmaq["pm25"] = boosted


def process_error(seed: int, day: dt.date, cmaq: dict[str, F]) -> None:
    """Errors of the forecast's aerosol processes that no input shows: smooth, local, drifting.

    PM2.5 is multiplied by a lognormal map (mean one) whose pattern drifts from one random map
    at 00 KST to another at 23 KST. Its log-standard deviation is ``PROCESS_LOG_SD`` in clean
    air and shrinks as ``1 / sqrt(1 + p / PROCESS_SCALE)``: large relative errors at low
    concentrations, smaller relative (but larger absolute) ones at high, as in evaluations of
    real chemistry models. PM10 and the gases of ``PROCESS_GASES`` follow.
    """
    pm25 = cmaq["pm25"]
    z = _drifting_map(np.random.default_rng([seed, day.toordinal(), 29]), pm25.shape)
    sd = PROCESS_LOG_SD / np.sqrt(1.0 + pm25 / PROCESS_SCALE)
    factor = np.exp(sd * z - sd**2 / 2)
    out = pm25 * factor
    if "pm10" in cmaq:
        cmaq["pm10"] = cmaq["pm10"] + (out - pm25)
    cmaq["pm25"] = out
    for gas, floor in PROCESS_GASES.items():  # mixing errors move the gases with the aerosol
        if gas in cmaq:
            cmaq[gas] = floor + (cmaq[gas] - floor) * factor


def _drifting_map(rng: np.random.Generator, shape: tuple[int, ...]) -> F:
    """A smooth standard-normal map (``PROCESS_CELLS``) drifting from 00 to 23 KST: (24, ny, nx)."""
    from scipy.ndimage import gaussian_filter

    maps = []
    for _ in range(2):
        z = gaussian_filter(rng.normal(0.0, 1.0, shape[1:]), PROCESS_CELLS)
        maps.append(z / max(float(z.std()), 1e-9))
    theta = np.linspace(0.0, np.pi / 2, shape[0])[:, None, None]
    return np.asarray(np.cos(theta) * maps[0] + np.sin(theta) * maps[1])


def analysis_error(seed: int, day: dt.date, pm25: F) -> F:
    """The analysis background with the reanalysis' own errors (:data:`ANALYSIS_LOG_SD`).

    A smooth drifting lognormal map, independent of the forecast's; its log-standard deviation
    shrinks as ``1 / (1 + p / ANALYSIS_SCALE)``, so the absolute error levels off near
    ``ANALYSIS_LOG_SD * ANALYSIS_SCALE`` ug/m3: the reanalysis knows the large episodes (its
    weather and inflow are right) but not the details of clean air.
    """
    if ANALYSIS_LOG_SD <= 0.0:
        return pm25
    z = _drifting_map(np.random.default_rng([seed, day.toordinal(), 43]), pm25.shape)
    sd = ANALYSIS_LOG_SD / (1.0 + pm25 / ANALYSIS_SCALE)
    return np.asarray(pm25 * np.exp(sd * z - sd**2 / 2))


def block_start(day: dt.date) -> dt.date:
    """The first day of the 7-day simulation block holding ``day``."""
    return day - dt.timedelta(days=(day - EPOCH_DAY).days % BLOCK_DAYS)


@dataclass
class DayFields:
    """Everything written for one target day, before it is written."""

    day: dt.date
    cmaq: dict[str, F]  # (24, parent rows, parent cols), canonical units
    weather: dict[str, F]  # (25, wrf rows, wrf cols)
    wrf_init: dt.datetime
    analysis: F  # (24, rows, cols)
    truth: F  # (24, rows, cols), the world's own PM2.5 (kept for documentation only)


class Twin:
    """Generates the synthetic archive for one seed around one service grid."""

    def __init__(self, service: GridSpec, seed: int = 0, style: CmaqStyle = "aconc") -> None:
        self.service = service
        self.seed = seed
        self.style = style
        self.world = World(service, seed)
        self.parent = parent_spec(service)
        stations = load_stations()
        lat = np.array([s.lat for s in stations])
        lon = np.array([s.lon for s in stations])
        # Station positions in the service grid, for observations and the Cressman spread.
        sgrid = Grid(service)
        self.station_xy = sgrid.lonlat_to_xy(lon, lat)
        rows, cols = sgrid.latlon_to_rowcol(lat, lon)
        inside = (
            (rows > -0.5)
            & (rows < service.nrows - 0.5)
            & (cols > -0.5)
            & (cols < service.ncols - 0.5)
        )
        self.station_cells = (
            np.floor(rows[inside] + 0.5).astype(int),
            np.floor(cols[inside] + 0.5).astype(int),
        )
        xs, ys = self.station_xy[0][inside], self.station_xy[1][inside]
        xx, yy = np.meshgrid(sgrid.x_centres, sgrid.y_centres)
        d2 = (xx.ravel()[:, None] - xs[None]) ** 2 + (yy.ravel()[:, None] - ys[None]) ** 2
        r2 = CRESSMAN_RADIUS_M**2
        self.cressman = np.where(d2 < r2, (r2 - d2) / (r2 + d2), 0.0).astype(np.float32)
        self._world_rows = slice(WRF_MARGIN, WRF_MARGIN + self.parent.nrows)
        self._world_cols = slice(WRF_MARGIN, WRF_MARGIN + self.parent.ncols)
        self._service_rows = slice(PARENT_ROW_MARGIN, PARENT_ROW_MARGIN + service.nrows)
        self._service_cols = slice(PARENT_COL_MARGIN, PARENT_COL_MARGIN + service.ncols)

    # -- simulation --------------------------------------------------------------------------

    def errors(self, day: dt.date) -> Errors:
        """The CMAQ/WRF forecast errors of target day ``day``."""
        return random_errors(self.seed, day, (self.world.ny, self.world.nx))

    def simulate_block(self, start: dt.date, last: dt.date | None = None) -> Iterator[DayFields]:
        """Run truth, forecast model and analysis background side by side; yield each day.

        All three runs begin ``SPINUP_DAYS`` before ``start`` from clean air. The forecast
        model, like an operational CMAQ, carries its own state from day to day and never sees
        observations; each hour it is driven by the forecast weather (and errors) of the KST day
        it belongs to. The background has the true weather and only the fixed biases
        (:func:`reanalysis_errors`).
        """
        t0 = dt.datetime.combine(start - dt.timedelta(days=SPINUP_DAYS), dt.time(0), tzinfo=dt.UTC)
        truth = self.world.initial_state(t0)
        model = self.world.initial_state(t0)
        hindcast = self.world.initial_state(t0)
        biases = reanalysis_errors()
        rs, cs = self._world_rows, self._world_cols
        srows, scols = self._service_rows, self._service_cols
        errors: dict[dt.date, Errors] = {}
        for k in range(-SPINUP_DAYS, BLOCK_DAYS):
            if last is not None and start + dt.timedelta(days=k) > last:
                break  # later days of the block are not wanted: stop early
            day = start + dt.timedelta(days=k)
            err = errors.setdefault(day, self.errors(day))
            true_err = true_variability(self.seed, day, (self.world.ny, self.world.nx))
            hours = forecast_hours(day)
            truth_pm, chem, background = [], [], []
            weather = [self.world.weather(hours[0] - dt.timedelta(hours=1), err)]
            for _ in hours:
                truth, wx = self.world.step(truth, true_err)
                model, mwx = self.world.step(model, err)
                hindcast, hwx = self.world.step(hindcast, biases)
                if k >= 0:
                    truth_pm.append(self.world.chemistry(truth, wx)["pm25"][rs, cs][srows, scols])
                    chem.append({n: v[rs, cs] for n, v in self.world.chemistry(model, mwx).items()})
                    weather.append(mwx)
                    hpm = {"pm25": self.world.chemistry(hindcast, hwx)["pm25"][rs, cs]}
                    overpredict_peaks(hpm, BACKGROUND_PEAK)
                    background.append(hpm["pm25"][srows, scols])
            if k < 0:
                continue
            cmaq = {n: np.array([c[n] for c in chem]) for n in chem[0]}
            overpredict_peaks(cmaq)
            process_error(self.seed, day, cmaq)
            init = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
            # The rain of D-1 01..13 UTC, before the first record (14 UTC, which adds its own).
            spin = [
                self.world.weather(init + dt.timedelta(hours=h), err).rain
                for h in range(1, WRF_LEAD_H - 1)
            ]
            rain0 = np.sum(spin, axis=0) if spin else np.zeros((self.world.ny, self.world.nx))
            rain = np.cumsum([rain0 + weather[0].rain, *[w.rain for w in weather[1:]]], axis=0)
            fields = {
                "temperature": np.array([w.temperature for w in weather]),
                "humidity": np.array([w.humidity for w in weather]),
                "pressure": np.array([w.pressure for w in weather]),
                "u": np.array([w.u for w in weather]),
                "v": np.array([w.v for w in weather]),
                "rain_accumulated": rain,
            }
            truth_day = np.array(truth_pm)
            background_day = analysis_error(self.seed, day, np.array(background))
            analysis = self.analysis(day, background_day, truth_day)
            yield DayFields(day, cmaq, fields, init, analysis, truth_day)

    def analysis(self, day: dt.date, background: F, truth: F) -> F:
        """Correct the background toward noisy station observations (Cressman, 28 km)."""
        rng = np.random.default_rng([self.seed, day.toordinal(), 41])
        r, c = self.station_cells
        out = np.empty_like(background)
        w = self.cressman
        for h in range(background.shape[0]):
            true_obs = truth[h][r, c]
            obs = np.maximum(
                true_obs * (1 + rng.normal(0, OBS_RELATIVE_SD, true_obs.shape))
                + rng.normal(0, OBS_ABSOLUTE_SD, true_obs.shape),
                0.0,
            )
            valid = rng.random(true_obs.shape) > OBS_MISSING
            inc = np.where(valid, obs - background[h][r, c], 0.0)
            wv = w * valid[None]
            wsum = wv.sum(axis=1)
            spread = (wv @ inc) / np.maximum(wsum, 1e-9) * np.minimum(wsum, 1.0)
            out[h] = np.maximum(background[h] + spread.reshape(background.shape[1:]), 0.0)
        return out

    # -- files -------------------------------------------------------------------------------

    def write_day(self, fields: DayFields, out: Path) -> list[Path]:
        """Write one day's files into the inbox layout of the default path templates."""
        day = fields.day
        tag = f"{day:%Y%m%d}"
        hours = forecast_hours(day)
        wrf_times = [hours[0] - dt.timedelta(hours=1), *hours]
        prefix = "CCTM_ACONC" if self.style == "aconc" else "COMBINE_ACONC"
        return [
            write_cmaq_file(
                out / "cmaq" / tag / f"{prefix}_{tag}.nc",
                fields.cmaq,
                hours,
                self.parent,
                style=self.style,
            ),
            write_wrf_file(
                out / "wrf" / tag / f"wrfout_d01_{wrf_times[0]:%Y-%m-%d_%H:%M:%S}",
                self.world.domain,
                wrf_times,
                fields.weather,
                init_time=fields.wrf_init,
            ),
            write_analysis_file(
                out / "analysis" / tag / f"PM25_ANALYSIS_{tag}.nc",
                fields.analysis,
                hours,
                self.service,
            ),
        ]


@lru_cache(maxsize=4)
def _twin(service: GridSpec, seed: int, style: CmaqStyle) -> Twin:
    """One twin per worker process: building the maps (land mask, emissions) takes seconds."""
    return Twin(service, seed, style)


def _write_block(
    args: tuple[GridSpec, int, CmaqStyle, dt.date, dt.date, dt.date, str],
) -> list[str]:
    service, seed, style, start, first, last, out = args
    twin = _twin(service, seed, style)
    written = []
    for fields in twin.simulate_block(start, last):
        if first <= fields.day <= last:
            twin.write_day(fields, Path(out))
            written.append(fields.day.isoformat())
    return written


def generate(
    service: GridSpec,
    first: dt.date,
    last: dt.date,
    out: str | Path,
    *,
    seed: int = 0,
    style: CmaqStyle = "aconc",
    workers: int | None = None,
    progress: bool = True,
) -> list[dt.date]:
    """Write the archive for target days ``first..last`` (inclusive) into ``out``.

    Blocks run in parallel over ``workers`` processes (default: all cores).
    """
    if last < first:
        raise ValueError(f"end {last} is before start {first}")
    blocks = []
    b = block_start(first)
    while b <= last:
        blocks.append(b)
        b += dt.timedelta(days=BLOCK_DAYS)
    jobs = [(service, seed, style, b, first, last, str(out)) for b in blocks]
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    from tqdm import tqdm

    bar = tqdm(total=(last - first).days + 1, unit="day", desc="twin", disable=not progress)
    done: list[dt.date] = []
    if workers <= 1:
        results = map(_write_block, jobs)
        for days in results:
            done += [dt.date.fromisoformat(d) for d in days]
            bar.update(len(days))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for days in pool.map(_write_block, jobs):
                done += [dt.date.fromisoformat(d) for d in days]
                bar.update(len(days))
    bar.close()
    return sorted(done)
