"""What every reader shares: the hours of a forecast day, provenance, validation, grid windows."""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import hashlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import SupportsInt

import numpy as np
import numpy.typing as npt
import xarray as xr

from service.errors import (
    BadValueError,
    DomainCoverageError,
    GridMismatchError,
    ImplausibleValueError,
    NegativeValueError,
    PM10BelowPM25Error,
    WrongUnitsError,
)
from service.features import Feature
from service.formats.ioapi import BADVAL3, LAMBERT, IoapiHeader
from service.grid import Grid
from service.timeaxis import KST as KST  # the readers' messages name KST hours
from service.timeaxis import UTC
from service.timeaxis import forecast_hours as forecast_hours  # the readers' valid times

log = logging.getLogger(__name__)

# Warnings already logged in the current unit of work (see :func:`warnings_once`).
_logged: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("logged", default=None)


@contextlib.contextmanager
def warnings_once() -> Iterator[None]:
    """Within the block, :func:`warn_once` logs each distinct warning once.

    A run reads the same files twice (the service grid, then a model's wider window); what
    the files hold (a skipped stray, PM10 below PM2.5 in a few cells) is said once.
    """
    token = _logged.set(set())
    try:
        yield
    finally:
        _logged.reset(token)


def warn_once(logger: logging.Logger, msg: str, *args: object) -> None:
    """``logger.warning(msg, *args)``, unless the same warning was logged already inside
    :func:`warnings_once` (outside it, always)."""
    seen = _logged.get()
    if seen is not None:
        key = f"{logger.name}:{msg % args}"
        if key in seen:
            return
        seen.add(key)
    logger.warning(msg, *args)


@dataclass(frozen=True)
class FileRecord:
    """Provenance of one input file: what was read, exactly.

    Attributes
    ----------
    kind
        ``cmaq``, ``wrf`` or ``analysis``.
    path
        Absolute path as read.
    size
        Bytes on disk.
    sha256
        Hex digest of the whole file.
    init_time
        The producing model run's start: WRF's ``SIMULATION_START_DATE``; for I/O API files,
        which carry no initialisation time, the first hour the file holds (``SDATE/STIME``).
    """

    kind: str
    path: str
    size: int
    sha256: str
    init_time: dt.datetime | None

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "kind": self.kind,
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "init_time": self.init_time.isoformat() if self.init_time else None,
        }


def file_record(path: str | Path, kind: str, init_time: dt.datetime | None) -> FileRecord:
    """Hash a file and describe it."""
    p = Path(path).resolve()
    digest = hashlib.sha256()
    with p.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return FileRecord(kind, str(p), p.stat().st_size, digest.hexdigest(), init_time)


@dataclass(frozen=True)
class SourceFields:
    """Fields read from one source on the service grid, with the files they came from.

    ``data`` has dimensions ``(time, row, col)``, canonical variable names and units
    (:mod:`service.features`), and ``time`` in UTC.
    """

    data: xr.Dataset
    files: tuple[FileRecord, ...]


def to_dataset(
    fields: dict[str, npt.NDArray[np.float32]],
    times: list[dt.datetime],
    features: dict[str, Feature],
    source: str,
) -> xr.Dataset:
    """Wrap canonical arrays ``(time, row, col)`` as a dataset with units and UTC times."""
    time = np.array([t.astimezone(UTC).replace(tzinfo=None) for t in times], "datetime64[ns]")
    data_vars = {
        name: (
            ("time", "row", "col"),
            arr,
            {"units": features[name].unit, "long_name": features[name].long_name},
        )
        for name, arr in fields.items()
    }
    return xr.Dataset(
        data_vars, coords={"time": time}, attrs={"source": source, "time_zone": "UTC"}
    )


@dataclass(frozen=True)
class Where:
    """Names a position in a block read from a file in the file's own terms.

    Readers check values in the blocks they read, before mapping them onto the service
    grid, so that a message can say ``TSTEP=2, LAY=0, ROW=47, COL=34`` of the file's own
    variable ``O3``, which is what a person opening the file will look for.

    Attributes
    ----------
    dims
        The file's names of the block's three axes (time, row, column).
    steps
        The file's index along the time axis of each position of the block.
    times
        The UTC valid time of each position of the block.
    row0, col0
        Where the block starts in the file's rows and columns.
    fixed
        Other dimensions held at one index, named after the time axis (``LAY=0``).
    grid
        Words naming the grid when it is not the file's own (``"service grid "``).
    """

    dims: tuple[str, str, str]
    steps: Sequence[int]
    times: Sequence[dt.datetime]
    row0: int = 0
    col0: int = 0
    fixed: tuple[tuple[str, int], ...] = ()
    grid: str = ""

    def __call__(self, index: Iterable[SupportsInt]) -> str:
        t, r, c = (int(i) for i in index)
        parts = [
            f"{self.dims[0]}={self.steps[t]}",
            *(f"{name}={value}" for name, value in self.fixed),
            f"{self.dims[1]}={self.row0 + r}",
            f"{self.dims[2]}={self.col0 + c}",
        ]
        return f"{self.grid}{', '.join(parts)} ({self.times[t]:%Y-%m-%d %H:%M} UTC)"


def on_service_grid(times: Sequence[dt.datetime]) -> Where:
    """Positions on the service grid (for fields derived from several variables or files)."""
    return Where(("hour", "row", "col"), range(len(times)), times, grid="service grid ")


def _named(variable: str) -> str:
    """``variable 'T2'`` for a file's variable; a description of a derived field as it is."""
    return f"variable {variable!r}" if variable.isidentifier() else variable


def check_missing(
    values: npt.NDArray[np.floating], path: str | Path, variable: str, where: Where
) -> None:
    """Raise :class:`BadValueError` for NaN, infinite or BADVAL3 values, saying which and where.

    Run it on the values as read, before any unit conversion moves BADVAL3.
    """
    nan = np.isnan(values)
    inf = np.isinf(values)
    badval = values <= BADVAL3 * 0.1
    bad = nan | inf | badval
    if not bad.any():
        return
    kinds = [
        f"{int(m.sum()):,} {label}"
        for m, label in (
            (nan, "NaN"),
            (inf, "infinite"),
            (badval, "BADVAL3 (-9.999E36, the I/O API missing-data value)"),
        )
        if m.any()
    ]
    raise BadValueError(
        path,
        f"{_named(variable)} has {' and '.join(kinds)} value(s), "
        f"first at {where(np.argwhere(bad)[0])}",
    )


def check_plausible(
    values: npt.NDArray[np.floating],
    feature: Feature,
    path: str | Path,
    variable: str,
    where: Where,
    *,
    units: str | None = None,
) -> None:
    """Check finite values in the feature's canonical unit against its plausible ranges.

    Parameters
    ----------
    values
        ``(time, row, col)`` after unit conversion.
    feature
        The vocabulary entry: range of values, range of the field's mean, unit mistakes.
    path
        The file (or files) named in the error.
    variable
        The file's own variable name, or words saying how the field was derived from the
        file's variables (``"wind speed from U10, V10"``).
    where
        Turns an index of ``values`` into the file's coordinates.
    units
        The units the file declares, for the message.

    Raises
    ------
    NegativeValueError
        A concentration below zero.
    WrongUnitsError
        Implausible values that a listed unit mistake (:class:`service.features.UnitMixup`)
        would explain: the message says which unit the values look like.
    ImplausibleValueError
        Other values outside the plausible range, or a mean no real field has.
    """
    if values.size == 0:
        return
    lo, hi = float(values.min()), float(values.max())
    mean = float(values.mean(dtype=np.float64))
    declared = f", declared {units.strip()!r}" if units is not None else ""
    subject = f"{_named(variable)} ({feature.long_name} in {feature.unit}{declared})"
    if feature.concentration and lo < 0:
        raise NegativeValueError(
            path,
            f"{subject} has negative concentrations: minimum {lo:.4g} {feature.unit} at "
            f"{where(np.unravel_index(int(values.argmin()), values.shape))}",
        )
    if feature.plausible(lo, hi, mean):
        return
    if lo < feature.low or hi > feature.high:
        worst = int(values.argmin()) if lo < feature.low else int(values.argmax())
        at = where(np.unravel_index(worst, values.shape))
        problem = (
            f"ranges {lo:.4g}..{hi:.4g} {feature.unit}, outside the plausible "
            f"{feature.low:g}..{feature.high:g} (worst at {at})"
        )
    elif feature.mean_low is not None and mean < feature.mean_low:
        problem = (
            f"averages {mean:.4g} {feature.unit} over the whole field, far below any real value "
            f"(at least {feature.mean_low:g})"
        )
    else:
        problem = (
            f"averages {mean:.4g} {feature.unit} over the whole field, far above any real value "
            f"(at most {feature.mean_high:g})"
        )
    mixup = feature.mixup_explaining(lo, hi, mean)
    if mixup is not None:
        raise WrongUnitsError(
            path,
            f"{subject} {problem}: the values look like another unit, {mixup.says}. {feature.why}",
        )
    raise ImplausibleValueError(path, f"{subject} {problem}. {feature.why}")


def check_day(
    values: npt.NDArray[np.floating],
    feature: Feature,
    path: str | Path,
    variable: str,
    times: Sequence[dt.datetime],
) -> None:
    """Check the mean of a whole assembled day against the feature's ``day_mean_low``.

    Each file's values were checked on their own (:func:`check_plausible`) against bounds
    that must also hold for the few hours one of several files may hold; a whole day is
    held to the stricter bound, which catches PM in mg/m3 labelled ug/m3 (or 100 times too
    small) that a single clean hour could not tell apart.

    Raises
    ------
    WrongUnitsError, ImplausibleValueError
        As :func:`check_plausible`, naming ``path`` (the file, or the day's files).
    """
    if feature.day_mean_low is None:
        return
    day = replace(feature, mean_low=max(feature.day_mean_low, feature.mean_low or 0.0))
    check_plausible(values, day, path, variable, on_service_grid(times))


#: The share of cell-hours with PM10 below PM2.5 beyond which a file is refused: more than
#: half means the variables are swapped or one is scaled wrongly, not model noise.
PM10_BELOW_PM25_MAX_SHARE = 0.5


def check_pm10_above_pm25(
    pm10: npt.NDArray[np.floating], pm25: npt.NDArray[np.floating], path: str | Path
) -> int:
    """Check PM10 >= PM2.5; return the number of cell-hours where it is not.

    A tolerance of 0.01 ug/m3 absorbs float32 rounding of equal values. A small share of
    inverted cell-hours is logged as a warning and the values are used; more than
    :data:`PM10_BELOW_PM25_MAX_SHARE` fails the file.

    Raises
    ------
    PM10BelowPM25Error
        PM10 below PM2.5 in more than half of the cell-hours.
    """
    below = pm10 < pm25 - 0.01
    count = int(below.sum())
    if not count:
        return 0
    share = count / below.size
    worst = float((pm25 - pm10).max())
    said = (
        f"PM10 is below PM2.5 in {count:,} of {below.size:,} cell-hours ({share:.0%}, "
        f"by up to {worst:.3g} ug/m3)"
    )
    if share > PM10_BELOW_PM25_MAX_SHARE:
        raise PM10BelowPM25Error(
            path,
            f"{said}: PM10 includes PM2.5, so the variables are swapped or one is in the "
            "wrong unit",
        )
    warn_once(log, "%s: %s; the values are used as they are", path, said)
    return count


def ioapi_window(header: IoapiHeader, grid: Grid, path: str | Path) -> tuple[int, int]:
    """Locate the service grid inside an I/O API grid; return the ``(row, col)`` offset.

    The file must use the same Lambert projection and cell size, and its cells must align
    with the service grid's (integer offset) and cover it, e.g. the 67 x 82 parent grid.

    Raises
    ------
    GridMismatchError
        Wrong projection, cell size or misaligned grid.
    DomainCoverageError
        A grid too small to contain the service grid (a subclass of the above).
    """
    s = grid.spec
    g = header.grid
    if header.gdtyp != LAMBERT:
        raise GridMismatchError(
            path, f"GDTYP is {header.gdtyp}, expected {LAMBERT} (Lambert conformal)"
        )
    expected = {"P_ALP": s.lat_1, "P_BET": s.lat_2, "XCENT": s.lon_0, "YCENT": s.lat_0}
    found = {
        "P_ALP": g.p_alp,
        "P_BET": g.p_bet,
        "XCENT": g.xcent,
        "YCENT": g.ycent,
    }
    wrong = [
        f"{k}={found[k]:g} (expected {v:g})"
        for k, v in expected.items()
        if abs(found[k] - v) > 1e-6
    ]
    if abs(g.p_gam - s.lon_0) > 1e-6:
        wrong.append(f"P_GAM={g.p_gam:g} (expected {s.lon_0:g})")
    if wrong:
        raise GridMismatchError(
            path, "projection differs from the service grid: " + ", ".join(wrong)
        )
    if abs(g.xcell - s.cell_m) > 1e-3 or abs(g.ycell - s.cell_m) > 1e-3:
        raise GridMismatchError(
            path, f"cell size {g.xcell:g} x {g.ycell:g} m, expected {s.cell_m:g} m"
        )
    col_off = (s.xorig_m - g.xorig) / s.cell_m
    row_off = (s.yorig_m - g.yorig) / s.cell_m
    if abs(col_off - round(col_off)) > 1e-6 or abs(row_off - round(row_off)) > 1e-6:
        raise GridMismatchError(
            path,
            f"grid origin ({g.xorig:g}, {g.yorig:g}) does not align with the service "
            f"grid's cells (offset {col_off:.3f} columns, {row_off:.3f} rows is not whole)",
        )
    r0, c0 = round(row_off), round(col_off)
    if r0 < 0 or c0 < 0 or r0 + s.nrows > g.nrows or c0 + s.ncols > g.ncols:
        raise DomainCoverageError(
            path,
            f"the {g.ncols} x {g.nrows} grid at ({g.xorig:g}, {g.yorig:g}) "
            f"does not contain the {s.ncols} x {s.nrows} service grid "
            f"at ({s.xorig_m:g}, {s.yorig_m:g})",
        )
    return r0, c0
