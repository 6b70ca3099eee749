"""CMAQ reader: I/O API files -> the six chemistry features for the 24 hours of KST day D.

Accepts ACONC-style files (gases in ppmV) and COMBINE-style files (ppbV), PM2.5 under any of
its common names, one file or several (e.g. two UTC days), on the service grid or on a larger
grid of the same projection whose cells align (the window is cut out).

Each file's header is checked before any data is read (dimensions, grid, hours), and only the
hours and the window the day needs are read; values are checked in the file's own terms
(variable name, ``TSTEP/LAY/ROW/COL``) before they are combined.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
import numpy.typing as npt

from service.errors import (
    ConflictingInputError,
    MissingInputError,
    MissingVariableError,
    TimeCoverageError,
    UnitError,
)
from service.features import CO, NO2, O3, PM10, PM25, SO2, Feature
from service.formats.ioapi import (
    DATA_DIMENSIONS,
    LIMITS,
    IoapiHeader,
    check_layout,
    check_tflag_agrees,
    looks_like_ioapi,
    read_header,
    read_times,
)
from service.formats.netcdf import (
    check_complete,
    check_dimensions,
    check_variable,
    open_dataset,
    read_steps,
)
from service.grid import Grid
from service.ingest.common import (
    KST,
    SourceFields,
    Where,
    check_day,
    check_missing,
    check_plausible,
    check_pm10_above_pm25,
    file_record,
    forecast_hours,
    ioapi_window,
    to_dataset,
    warn_once,
)

log = logging.getLogger(__name__)

_GAS_UNITS = {"ppmv": 1.0, "ppm": 1.0, "ppbv": 1e-3, "ppb": 1e-3}
_AEROSOL_UNITS = {"ugm-3", "ug/m**3", "micrograms/m**3", "ug/m3", "µg/m3", "μg/m3", "ugm^-3"}


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


@dataclass(frozen=True)
class _IoapiFile:
    """An open I/O API file whose header passed: where the service grid lies, its hours."""

    path: Path
    ds: netCDF4.Dataset
    header: IoapiHeader
    window: tuple[int, int]
    times: list[dt.datetime]


def _open_ioapi(
    path: Path, grid: Grid, species: Sequence[Species], stack: contextlib.ExitStack[bool | None]
) -> _IoapiFile | None:
    """Open one file and check its header, or return ``None`` for a file to skip.

    Nothing but attributes, dimensions and ``TFLAG`` is read here, so a corrupt header
    (fifty million steps, say) fails at once.
    """
    ds = open_dataset(path)
    stack.callback(ds.close)
    names = {n for sp in species for n in sp.names}
    if not looks_like_ioapi(ds) and not names & set(ds.variables):
        warn_once(
            log,
            "%s: skipped: a netCDF file but not I/O API output (no TFLAG, no I/O API "
            "attributes or dimensions, none of the variables %s)",
            path,
            ", ".join(sorted(names)),
        )
        return None
    check_dimensions(ds, path, LIMITS)
    check_complete(ds, path)
    header = read_header(ds, path)
    check_layout(ds, header, path)
    absent = [n for n in header.var_list if n not in ds.variables]
    if absent:
        raise MissingVariableError(
            path,
            f"VAR-LIST names {', '.join(absent)} but the file has no such variable "
            f"(it has {_data_variables(ds)})",
        )
    window = ioapi_window(header, grid, path)
    if header.tstep != 10000:
        raise TimeCoverageError(path, f"TSTEP is {header.tstep}, expected 10000 (hourly steps)")
    times = read_times(ds, path, header)
    if not times:
        raise TimeCoverageError(path, "the file holds no time steps (TSTEP is 0)")
    return _IoapiFile(path, ds, header, window, times)


def read_ioapi_day(
    paths: Sequence[str | Path],
    date: dt.date,
    grid: Grid,
    species: Sequence[Species],
    kind: str,
) -> SourceFields:
    """Read the 24 hours of KST day ``date`` of some species from one or more I/O API files.

    Files are checked before any data is read: declared dimensions (at most a year of
    steps, see :data:`service.formats.ioapi.LIMITS`), the header, the grid and ``TFLAG``;
    then only the hours of the day are read, inside the service grid's window.

    Which files count:

    - A file that is netCDF but not I/O API output at all (no ``TFLAG``, none of the I/O
      API attributes or dimensions, none of the species' variables), such as an unrelated
      ``.nc`` left in the folder, is skipped with a logged warning naming it.
    - Every other file must be good: one that claims to be I/O API (any of those marks) but
      is broken fails the day, and so does a file that is not netCDF at all (empty,
      truncated, text, HDF5 garbage), since it may be a damaged copy of the expected file.
    - Two files may hold the same hour (a 25-step file followed by the next day's) only if
      they agree on it (identical copies pass); different values raise
      :class:`ConflictingInputError` naming both files.

    Raises
    ------
    InputFileError
        Any of its subclasses, naming the file and the problem.
    """
    if not paths:
        raise MissingInputError(kind, "no input files given")
    needed = forecast_hours(date)
    wanted = set(needed)
    with contextlib.ExitStack() as stack:
        files: list[_IoapiFile] = []
        skipped: list[str] = []
        for path in paths:
            f = _open_ioapi(Path(path), grid, species, stack)
            if f is None:
                skipped.append(Path(path).name)
            else:
                files.append(f)
        if not files:
            raise MissingInputError(
                paths[0] if len(paths) == 1 else f"{len(paths)} files in {Path(paths[0]).parent}",
                f"no {kind} input: skipped {', '.join(skipped)}, not I/O API output (no TFLAG, "
                f"no I/O API attributes or dimensions, no {kind} variables)",
            )
        label = (
            str(files[0].path)
            if len(files) == 1
            else f"{len(files)} {kind} files ({files[0].path.parent})"
        )
        held = {t for f in files for t in f.times if t in wanted}
        if not held:
            spans = "; ".join(
                f"{f.path.name}: {f.times[0]:%Y-%m-%d %H:%M}..{f.times[-1]:%H:%M} UTC"
                for f in files
            )
            raise TimeCoverageError(
                label,
                f"wrong dates: KST day {date} needs {needed[0]:%Y-%m-%d %H:%M}.."
                f"{needed[-1]:%Y-%m-%d %H:%M} UTC, the files hold {spans}",
            )
        missing = [t for t in needed if t not in held]
        if missing:
            shown = ", ".join(f"{t.astimezone(KST):%H} KST" for t in missing[:6])
            more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
            raise TimeCoverageError(
                label, f"{len(missing)} of the 24 hours of {date} KST are missing: {shown}{more}"
            )
        fields = _read_fields(files, needed, grid, species)
        for sp in species:
            name = next((n for n in sp.names if n in files[0].ds.variables), sp.names[0])
            check_day(fields[sp.feature.name], sp.feature, label, name, needed)
        records = [file_record(f.path, kind, f.times[0]) for f in files]
    if "pm10" in fields and "pm25" in fields:
        check_pm10_above_pm25(fields["pm10"], fields["pm25"], label)
    features = {sp.feature.name: sp.feature for sp in species}
    return SourceFields(to_dataset(fields, needed, features, kind), tuple(records))


def _read_fields(
    files: list[_IoapiFile],
    needed: list[dt.datetime],
    grid: Grid,
    species: Sequence[Species],
) -> dict[str, npt.NDArray[np.float32]]:
    """Read the needed hours of every species, file by file; overlapping hours must agree."""
    nrows, ncols = grid.shape
    out = {sp.feature.name: np.empty((len(needed), nrows, ncols), np.float32) for sp in species}
    owner: list[_IoapiFile | None] = [None] * len(needed)
    for f in files:
        index = {t: step for step, t in enumerate(f.times)}
        pairs = [(k, index[t]) for k, t in enumerate(needed) if t in index]
        if not pairs:
            continue
        steps = [s for _, s in pairs]
        check_tflag_agrees(f.ds, f.path, steps, f.header.var_list)
        for sp in species:
            name, values = _read_species(f, sp, steps, grid)
            for j, (k, _) in enumerate(pairs):
                first = owner[k]
                if first is None:
                    out[sp.feature.name][k] = values[j]
                else:
                    kept = out[sp.feature.name][k]
                    _check_agree(first.path, f.path, kept, values[j], sp.feature, name, needed[k])
        for k, _ in pairs:
            owner[k] = owner[k] or f
    return out


def _data_variables(ds: netCDF4.Dataset) -> str:
    """The file's own variables, ``TFLAG`` aside, for messages."""
    return ", ".join(n for n in ds.variables if n != "TFLAG") or "none"


def _read_species(
    f: _IoapiFile, sp: Species, steps: list[int], grid: Grid
) -> tuple[str, npt.NDArray[np.float32]]:
    """One species at some steps, inside the window, checked and in the canonical unit."""
    name = next((n for n in sp.names if n in f.ds.variables), None)
    if name is None:
        raise MissingVariableError(
            f.path,
            f"variable for {sp.feature.long_name} is missing (looked for "
            f"{' or '.join(sp.names)}; the file has {_data_variables(f.ds)})",
        )
    var = check_variable(f.ds, f.path, name, DATA_DIMENSIONS)
    units = var.getncattr("units") if "units" in var.ncattrs() else ""
    units = units.decode("ascii", "replace") if isinstance(units, bytes) else str(units)
    factor = unit_factor(units, sp, f.path, name)
    nrows, ncols = grid.shape
    r0, c0 = f.window
    raw = read_steps(f.ds, f.path, name, steps, (0, slice(r0, r0 + nrows), slice(c0, c0 + ncols)))
    times = [f.times[s] for s in steps]
    where = Where(("TSTEP", "ROW", "COL"), steps, times, r0, c0, fixed=(("LAY", 0),))
    check_missing(raw, f.path, name, where)
    values = raw.astype(np.float32) * np.float32(factor)
    check_plausible(values, sp.feature, f.path, name, where, units=units)
    return name, values


def _check_agree(
    first: Path,
    second: Path,
    a: npt.NDArray[np.float32],
    b: npt.NDArray[np.float32],
    feature: Feature,
    name: str,
    when: dt.datetime,
) -> None:
    """Raise :class:`ConflictingInputError` unless two files' values of one hour agree.

    Agreement is to float32 rounding (relative 1e-5), so that the same hour written in ppbV
    by one file and ppmV by another still counts as the same.
    """
    if np.allclose(a, b, rtol=1e-5, atol=0.0):
        return
    diff = np.abs(a.astype(np.float64) - b)
    both = (a > 0) & (b > 0)
    ratio = ""
    if both.any():
        ratio = f", the second {float(np.median(b[both] / a[both])):.3g} times the first"
    raise ConflictingInputError(
        first,
        f"holds {when:%Y-%m-%d %H:%M} UTC like {second} but with different values: "
        f"{name} ({feature.name}) differs by up to {float(diff.max()):.4g} {feature.unit}"
        f"{ratio}; which file is right is unknown, remove or fix one",
    )


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

    Notes
    -----
    Files that are not CMAQ output: a netCDF file with no mark of the I/O API (no ``TFLAG``,
    none of its attributes or dimensions) and none of the species' variables, such as an
    unrelated ``.nc`` in the folder, is skipped with a logged warning naming it. A file that
    claims to be I/O API but is broken, or that is not netCDF at all (empty, truncated, text),
    fails the day: it may be a damaged copy of the expected file. Two files holding the same
    hour must agree on it (see :func:`read_ioapi_day`).
    """
    return read_ioapi_day(paths, date, grid, CMAQ_SPECIES, "cmaq")
