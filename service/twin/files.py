"""Canonical fields -> files in the real formats: CMAQ and analysis I/O API, WRF wrfout.

These are the inverses of the readers in :mod:`service.ingest`: the twin writes through
them, and the tests use them to build small, exact input files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from service.formats.ioapi import IoapiVariable, write_ioapi
from service.formats.wrfout import TIME_FORMAT, write_wrfout
from service.settings import GridSpec
from service.twin.domains import WrfDomain, ioapi_grid

F = npt.NDArray[np.floating]
CmaqStyle = Literal["aconc", "combine"]
SYNTHETIC = "SYNTHETIC data from the pm25-forecast twin, not a real model run"

#: File name and units of each CMAQ feature for the two output styles.
_CMAQ_NAMES = {
    "aconc": {
        "co": ("CO", "ppmV"),
        "so2": ("SO2", "ppmV"),
        "o3": ("O3", "ppmV"),
        "no2": ("NO2", "ppmV"),
        "pm10": ("PM10", "ug/m**3"),
        "pm25": ("PM2_5", "ug/m**3"),
    },
    "combine": {
        "co": ("CO", "ppbV"),
        "so2": ("SO2", "ppbV"),
        "o3": ("O3", "ppbV"),
        "no2": ("NO2", "ppbV"),
        "pm10": ("PM10", "ug m-3"),
        "pm25": ("PM25_TOT", "ug m-3"),
    },
}


def write_cmaq_file(
    path: str | Path,
    fields: Mapping[str, F],
    times: Sequence[dt.datetime],
    grid: GridSpec,
    *,
    style: CmaqStyle = "aconc",
) -> Path:
    """Write CMAQ output for some hours from canonical fields (ppm, ug/m3) on ``grid``.

    ``style="aconc"`` writes gases in ppmV and PM2.5 as ``PM2_5``; ``"combine"`` writes
    gases in ppbV and PM2.5 as ``PM25_TOT``.
    """
    names = _CMAQ_NAMES[style]
    scale = 1000.0 if style == "combine" else 1.0
    variables = {}
    for key, value in fields.items():
        name, units = names[key]
        factor = scale if units.startswith("ppb") else 1.0
        variables[name] = IoapiVariable(np.asarray(value) * factor, units, f"{key} ({SYNTHETIC})")
    return write_ioapi(
        path,
        variables,
        times,
        ioapi_grid(grid),
        filedesc=f"CMAQ {style.upper()} forecast - {SYNTHETIC}",
        history=SYNTHETIC,
        upnam="CCTM_TWIN",
    )


def write_analysis_file(
    path: str | Path, pm25: F, times: Sequence[dt.datetime], grid: GridSpec
) -> Path:
    """Write the PM2.5 data-assimilation analysis (``PM2_5``, ug/m3) on ``grid``."""
    return write_ioapi(
        path,
        {"PM2_5": IoapiVariable(pm25, "ug/m**3", f"analysed PM2.5 ({SYNTHETIC})")},
        times,
        ioapi_grid(grid),
        filedesc=f"PM2.5 data-assimilation analysis - {SYNTHETIC}",
        history=SYNTHETIC,
        upnam="OI_TWIN",
    )


def mixing_ratio(temperature_c: F, humidity: F, pressure: F) -> F:
    """Q2 (kg/kg) for a relative humidity (%): the inverse of WRF's RH formula."""
    t2 = np.asarray(temperature_c, np.float64) + 273.15
    es = 6.112 * np.exp(17.67 * (t2 - 273.15) / (t2 - 29.65))
    qvs = 0.622 * es / (0.01 * np.asarray(pressure) - 0.378 * es)
    return np.asarray(humidity) / 100.0 * qvs


def write_wrf_file(
    path: str | Path,
    domain: WrfDomain,
    times: Sequence[dt.datetime],
    weather: Mapping[str, F],
    *,
    init_time: dt.datetime,
    rotation: bool = True,
    convective_fraction: float = 0.3,
) -> Path:
    """Write a wrfout file from earth-relative weather on the WRF domain.

    Parameters
    ----------
    weather
        ``(Time, south_north, west_east)`` arrays: ``temperature`` (C), ``humidity`` (%),
        ``pressure`` (Pa), ``u``/``v`` (m/s, earth-relative), ``rain_accumulated`` (mm since
        ``init_time``).
    rotation
        Write SINALPHA/COSALPHA; without them a reader must use the cone formula.
    convective_fraction
        Share of the accumulated rain written to RAINC (the rest goes to RAINNC).
    """
    lat, lon = domain.lat_lon()
    sina, cosa = domain.rotation()
    u, v = np.asarray(weather["u"]), np.asarray(weather["v"])
    # Earth-relative -> grid-relative: the inverse of the reader's rotation.
    u10 = u * cosa + v * sina
    v10 = v * cosa - u * sina
    rain = np.asarray(weather["rain_accumulated"])
    fields: dict[str, F] = {
        "XLAT": lat,
        "XLONG": lon,
        "T2": np.asarray(weather["temperature"]) + 273.15,
        "Q2": mixing_ratio(weather["temperature"], weather["humidity"], weather["pressure"]),
        "PSFC": np.asarray(weather["pressure"]),
        "U10": u10,
        "V10": v10,
        "RAINC": rain * convective_fraction,
        "RAINNC": rain * (1.0 - convective_fraction),
    }
    if rotation:
        fields["SINALPHA"] = sina
        fields["COSALPHA"] = cosa
    attrs = domain.attrs(init_time.astimezone(dt.UTC).strftime(TIME_FORMAT))
    return write_wrfout(path, times, fields, attrs)
