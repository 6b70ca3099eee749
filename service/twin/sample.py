"""A small, smooth synthetic day of CMAQ, WRF and analysis files laid out as an inbox.

Analytic fields with plausible magnitudes, not the simulated world of the full twin: quick
to write, exact to check, for tests, benchmarks and examples. SYNTHETIC data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from service.settings import GridSpec
from service.timeaxis import forecast_hours
from service.twin.domains import (
    PARENT_COL_MARGIN,
    PARENT_ROW_MARGIN,
    WrfDomain,
    parent_spec,
    wrf_domain,
)
from service.twin.files import CmaqStyle, write_analysis_file, write_cmaq_file, write_wrf_file

F = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SampleDay:
    """Paths written for one sample day."""

    cmaq: list[Path]
    wrf: list[Path]
    analysis: list[Path]


def _hours_axis(times: list[dt.datetime]) -> F:
    return np.array([(t - times[0]).total_seconds() / 3600.0 for t in times])


def sample_cmaq_fields(spec: GridSpec, times: list[dt.datetime], seed: int = 0) -> dict[str, F]:
    """Smooth, positive chemistry fields (ppm, ug/m3) on ``spec`` for ``times``."""
    rng = np.random.default_rng(seed)
    h = _hours_axis(times)[:, None, None]
    jj, ii = np.meshgrid(np.arange(spec.nrows), np.arange(spec.ncols), indexing="ij")
    plume = np.exp(-(((ii - spec.ncols * 0.4) / 8) ** 2 + ((jj - spec.nrows * 0.75) / 8) ** 2))
    diurnal = 1.0 + 0.3 * np.sin(2 * np.pi * (h + 6) / 24)
    pm25 = 8.0 + 40.0 * plume * diurnal + rng.uniform(0, 2, (len(times), *plume.shape))
    return {
        "co": 0.2 + 0.5 * plume * diurnal,
        "so2": 0.002 + 0.004 * plume * diurnal,
        "o3": 0.03 + 0.01 * np.sin(2 * np.pi * (h - 9) / 24) * np.ones_like(plume),
        "no2": 0.01 + 0.03 * plume * diurnal,
        "pm10": pm25 * 1.6,
        "pm25": pm25,
    }


def sample_weather(domain: WrfDomain, times: list[dt.datetime], init: dt.datetime) -> dict[str, F]:
    """Smooth weather on the WRF domain, with rain accumulated since ``init``."""
    spec = domain.spec
    h = _hours_axis(times)[:, None, None]
    lat, lon = domain.lat_lon()
    temperature = 15.0 - 0.8 * (lat - 36.0) + 5.0 * np.sin(2 * np.pi * (h - 9) / 24)
    rate = np.clip(np.sin(2 * np.pi * h / 24) * np.exp(-((lon - 127) ** 2)), 0, None) * 2.0
    hours_since_init = (times[0] - init).total_seconds() / 3600.0
    rain = np.cumsum(rate, axis=0) + 0.5 * hours_since_init
    shape = (len(times), spec.nrows, spec.ncols)
    return {
        "temperature": np.broadcast_to(temperature, shape),
        "humidity": np.broadcast_to(60.0 + 20.0 * np.cos(np.radians(lon - 126) * 10), shape),
        "pressure": np.broadcast_to(101_000.0 - 100.0 * (lat - 36.0), shape),
        "u": np.broadcast_to(5.0 + 0.0 * lat, shape),
        "v": np.broadcast_to(2.0 * np.sin(2 * np.pi * h / 24) + 0.0 * lat, shape),
        "rain_accumulated": rain,
    }


def write_sample_day(
    inbox: str | Path,
    date: dt.date,
    service: GridSpec,
    *,
    style: CmaqStyle = "aconc",
    split_cmaq: bool = False,
    wrf_rotation: bool = True,
    seed: int = 0,
) -> SampleDay:
    """Write one day's CMAQ (parent grid), WRF (wider domain) and analysis files.

    The layout matches the default path templates, so ``PM25_INBOX=inbox`` finds them.
    """
    inbox = Path(inbox)
    tag = f"{date:%Y%m%d}"
    hours = forecast_hours(date)
    parent = parent_spec(service)
    chem = sample_cmaq_fields(parent, hours, seed)
    cmaq_dir = inbox / "cmaq" / tag
    if split_cmaq:
        cut = next(k for k, t in enumerate(hours) if t.hour == 0)
        cmaq = [
            write_cmaq_file(
                cmaq_dir / f"CCTM_ACONC_{hours[part][0]:%Y%m%d}.nc",
                {k: v[part] for k, v in chem.items()},
                hours[part],
                parent,
                style=style,
            )
            for part in (slice(0, cut), slice(cut, None))
        ]
    else:
        cmaq = [
            write_cmaq_file(cmaq_dir / f"CCTM_ACONC_{tag}.nc", chem, hours, parent, style=style)
        ]
    domain = wrf_domain(service)
    init = hours[0] - dt.timedelta(hours=3)
    wrf_times = [hours[0] - dt.timedelta(hours=1), *hours]
    weather = sample_weather(domain, wrf_times, init)
    wrf = [
        write_wrf_file(
            inbox / "wrf" / tag / f"wrfout_d01_{wrf_times[0]:%Y-%m-%d_%H:%M:%S}",
            domain,
            wrf_times,
            weather,
            init_time=init,
            rotation=wrf_rotation,
        )
    ]
    rows = slice(PARENT_ROW_MARGIN, -PARENT_ROW_MARGIN)
    cols = slice(PARENT_COL_MARGIN, -PARENT_COL_MARGIN)
    analysis = [
        write_analysis_file(
            inbox / "analysis" / tag / f"PM25_ANALYSIS_{tag}.nc",
            chem["pm25"][:, rows, cols] * 0.9,
            hours,
            service,
        )
    ]
    return SampleDay(cmaq, wrf, analysis)
