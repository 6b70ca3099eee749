"""CMAQ reader: I/O API files -> the six chemistry features for the 24 hours of KST day D.

Accepts ACONC-style files (gases in ppmV) and COMBINE-style files (ppbV), PM2.5 under any of
its common names, one file or several (e.g. two UTC days), on the service grid or on a larger
grid of the same projection whose cells align (the window is cut out).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import netCDF4
import numpy as np
import numpy.typing as npt

from service.errors import MissingInputError, MissingVariableError, TimeCoverageError, UnitError
from service.features import CO, NO2, O3, PM10, PM25, SO2, Feature
from service.formats.ioapi import IoapiHeader, read_header, read_times
from service.formats.netcdf import check_complete, open_dataset, read_variable
from service.grid import Grid
from service.ingest.common import (
    KST,
    FileRecord,
    SourceFields,
    file_record,
    forecast_hours,
    ioapi_window,
    to_dataset,
    validate_values,
    warn_pm10_below_pm25,
)

_GAS_UNITS = {"ppmv": 1.0, "ppm": 1.0, "ppbv": 1e-3, "ppb": 1e-3}
_AEROSOL_UNITS = {"ugm-3", "ug/m**3", "micrograms/m**3", "ug/m3", "µg/m3", "μg/m3", "ugm^-3"}


class _OpenFile(NamedTuple):
    ds: netCDF4.Dataset
    header: IoapiHeader
    window: tuple[int, int]


@dataclass(frozen=True)
class Species:
    """How one feature appears in I/O API files: accepted names and the kind of unit."""

    feature: Feature
    names: tuple[str, ...]
    gas: bool


CMAQ_SPECIES: tuple[Species, ...] = (
    Species(CO, ("CO",), gas=True),
    Species(SO2, ("SO2",), gas=True),
    Species(O3, ("O3",), gas=True),
    Species(NO2, ("NO2",), gas=True),
    Species(PM10, ("PM10",), gas=False),
    Species(PM25, ("PM25_TOT", "PM2_5", "PM25"), gas=False),
)


def unit_factor(units: str, species: Species, path: str | Path, name: str) -> float:
    """The factor converting a file's units to the feature's canonical unit.

    Raises
    ------
    UnitError
        Units unknown, or of the wrong kind (a mass concentration for a gas, say).
    """
    key = units.strip().lower().replace(" ", "")
    if species.gas and key in _GAS_UNITS:
        return _GAS_UNITS[key]
    if not species.gas and key in _AEROSOL_UNITS:
        return 1.0
    accepted = "ppmV or ppbV" if species.gas else "ug m-3, ug/m**3 or micrograms/m**3"
    raise UnitError(path, f"variable {name!r} has units {units.strip()!r}; expected {accepted}")


def read_ioapi_day(
    paths: Sequence[str | Path],
    date: dt.date,
    grid: Grid,
    species: Sequence[Species],
    kind: str,
) -> SourceFields:
    """Read the 24 hours of KST day ``date`` of some species from one or more I/O API files.

    When two files hold the same hour (a 25-step file followed by the next day's), the file
    later in ``paths`` wins; an hour repeated inside one file is an error.

    Raises
    ------
    InputFileError
        Any of its subclasses, naming the file and the problem.
    """
    if not paths:
        raise MissingInputError(kind, "no input files given")
    needed = forecast_hours(date)
    wanted = set(needed)
    where: dict[dt.datetime, tuple[int, int]] = {}
    spans: list[str] = []
    handles: list[netCDF4.Dataset] = []
    opened: list[_OpenFile] = []
    records: list[FileRecord] = []
    try:
        for fi, path in enumerate(paths):
            ds = open_dataset(path)
            handles.append(ds)
            check_complete(ds, path)
            header = read_header(ds, path)
            window = ioapi_window(header, grid, path)
            if header.tstep != 10000:
                raise TimeCoverageError(
                    path, f"TSTEP is {header.tstep}, expected 10000 (hourly steps)"
                )
            times = read_times(ds, path)
            repeated = [t for t, n in Counter(times).items() if n > 1]
            if repeated:
                raise TimeCoverageError(
                    path,
                    f"hour {repeated[0]:%Y-%m-%d %H:%M} UTC appears {times.count(repeated[0])}"
                    " times in TFLAG",
                )
            if times:
                spans.append(f"{Path(path).name}: {times[0]:%Y-%m-%d %H:%M}..{times[-1]:%H:%M} UTC")
            for step, t in enumerate(times):
                if t in wanted:
                    where[t] = (fi, step)
            records.append(file_record(path, kind, times[0] if times else None))
            opened.append(_OpenFile(ds, header, window))
        label = (
            paths[0] if len(paths) == 1 else f"{len(paths)} {kind} files ({Path(paths[0]).parent})"
        )
        if not where:
            raise TimeCoverageError(
                label,
                f"wrong dates: KST day {date} needs {needed[0]:%Y-%m-%d %H:%M}.."
                f"{needed[-1]:%Y-%m-%d %H:%M} UTC, the files hold "
                + ("; ".join(spans) or "no hours"),
            )
        missing = [t for t in needed if t not in where]
        if missing:
            shown = ", ".join(f"{t.astimezone(KST):%H} KST" for t in missing[:6])
            more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
            raise TimeCoverageError(
                label, f"{len(missing)} of the 24 hours of {date} KST are missing: {shown}{more}"
            )
        fields = _read_fields(paths, opened, where, needed, grid, species)
    finally:
        for ds in handles:
            ds.close()

    label_path = paths[0] if len(paths) == 1 else ", ".join(str(p) for p in paths)
    names = {sp.feature.name: sp for sp in species}
    for name, values in fields.items():
        validate_values(values, names[name].feature, label_path, needed)
    if "pm10" in fields and "pm25" in fields:
        warn_pm10_below_pm25(fields["pm10"], fields["pm25"], label_path)
    features = {sp.feature.name: sp.feature for sp in species}
    return SourceFields(to_dataset(fields, needed, features, kind), tuple(records))


def _read_fields(
    paths: Sequence[str | Path],
    opened: list[_OpenFile],
    where: dict[dt.datetime, tuple[int, int]],
    needed: list[dt.datetime],
    grid: Grid,
    species: Sequence[Species],
) -> dict[str, npt.NDArray[np.float32]]:
    nrows, ncols = grid.shape
    out = {sp.feature.name: np.empty((len(needed), nrows, ncols), np.float32) for sp in species}
    for fi, (ds, header, (r0, c0)) in enumerate(opened):
        path = paths[fi]
        pairs = [(k, where[t][1]) for k, t in enumerate(needed) if where[t][0] == fi]
        if not pairs:
            continue
        steps = [s for _, s in pairs]
        s0, s1 = min(steps), max(steps) + 1
        for sp in species:
            name = next((n for n in sp.names if n in ds.variables), None)
            if name is None:
                raise MissingVariableError(
                    path,
                    f"variable for {sp.feature.long_name} is missing (looked for "
                    f"{' or '.join(sp.names)}; the file has {', '.join(header.var_list)})",
                )
            units = str(ds.variables[name].__dict__.get("units", ""))
            factor = unit_factor(units, sp, path, name)
            block = read_variable(
                ds, path, name, (slice(s0, s1), 0, slice(r0, r0 + nrows), slice(c0, c0 + ncols))
            )
            for k, s in pairs:
                out[sp.feature.name][k] = block[s - s0]
            if factor != 1.0:
                idx = [k for k, _ in pairs]
                # BADVAL stays far below zero after scaling, so validation still finds it.
                out[sp.feature.name][idx] *= np.float32(factor)
    return out


def read_cmaq(paths: Sequence[str | Path], date: dt.date, grid: Grid) -> SourceFields:
    """Read CMAQ CO, SO2, O3, NO2 (ppm), PM10 and PM2.5 (ug/m3) for KST day ``date``.

    Parameters
    ----------
    paths
        One or more I/O API files that together hold UTC ``D-1 15:00 .. D 14:00``.
    date
        The target day D (KST).
    grid
        The service grid.

    Returns
    -------
    SourceFields
        ``(24, nrows, ncols)`` fields named ``co, so2, o3, no2, pm10, pm25`` and provenance.

    Raises
    ------
    InputFileError
        A subclass naming the file and the problem (see :mod:`service.errors`).
    """
    return read_ioapi_day(paths, date, grid, CMAQ_SPECIES, "cmaq")
