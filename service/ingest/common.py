"""What every reader shares: the hours of a forecast day, provenance, validation, grid windows."""

from __future__ import annotations

import datetime as dt
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import xarray as xr

from service.errors import (
    BadValueError,
    GridMismatchError,
    ImplausibleValueError,
    NegativeValueError,
    PM10BelowPM25Warning,
)
from service.features import Feature
from service.formats.ioapi import BADVAL3, LAMBERT, IoapiHeader
from service.grid import Grid
from service.timeaxis import KST as KST  # the readers' messages name KST hours
from service.timeaxis import UTC
from service.timeaxis import forecast_hours as forecast_hours  # the readers' valid times


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


def validate_values(
    values: npt.NDArray[np.floating],
    feature: Feature,
    path: str | Path,
    times: list[dt.datetime],
    *,
    source_name: str | None = None,
) -> None:
    """Check one field for missing, negative and implausible values.

    Parameters
    ----------
    values
        ``(time, row, col)`` in the feature's canonical unit.
    feature
        The vocabulary entry giving the plausible range.
    path
        The file(s) named in the error.
    times
        Valid times of axis 0, to say *when* the first bad value occurs.
    source_name
        The variable's name in the file, if it differs from the canonical name.

    Raises
    ------
    BadValueError, NegativeValueError, ImplausibleValueError
    """
    label = source_name or feature.name
    finite = np.isfinite(values)
    bad = ~finite | (values <= BADVAL3 * 0.1)
    if bad.any():
        t, r, c = np.argwhere(bad)[0]
        raise BadValueError(
            path,
            f"{label} has {int(bad.sum())} missing values (NaN or BADVAL3), "
            f"first at {times[t]:%Y-%m-%d %H:%M} UTC, row {r}, col {c}",
        )
    lo, hi = float(values.min()), float(values.max())
    if feature.concentration and lo < 0:
        t, r, c = np.unravel_index(int(values.argmin()), values.shape)
        raise NegativeValueError(
            path,
            f"{label} has negative concentrations (minimum {lo:.4g} {feature.unit} "
            f"at {times[t]:%Y-%m-%d %H:%M} UTC, row {r}, col {c})",
        )
    if lo < feature.low or hi > feature.high:
        worst = lo if lo < feature.low else hi
        raise ImplausibleValueError(
            path,
            f"{label} ranges {lo:.4g}..{hi:.4g} {feature.unit}, outside the plausible "
            f"{feature.low:g}..{feature.high:g} (found {worst:.4g}): {feature.why}",
        )


def warn_pm10_below_pm25(
    pm10: npt.NDArray[np.floating], pm25: npt.NDArray[np.floating], path: str | Path
) -> int:
    """Warn (:class:`PM10BelowPM25Warning`) where PM10 < PM2.5; return the count of such values.

    A tolerance of 0.01 ug/m3 absorbs float32 rounding of equal values.
    """
    below = pm10 < pm25 - 0.01
    count = int(below.sum())
    if count:
        worst = float((pm25 - pm10).max())
        warnings.warn(
            PM10BelowPM25Warning(
                f"{path}: PM10 is below PM2.5 in {count} of {below.size} cell-hours "
                f"(by up to {worst:.3g} ug/m3); the values are used as they are"
            ),
            stacklevel=2,
        )
    return count


def ioapi_window(header: IoapiHeader, grid: Grid, path: str | Path) -> tuple[int, int]:
    """Locate the service grid inside an I/O API grid; return the ``(row, col)`` offset.

    The file must use the same Lambert projection and cell size, and its cells must align
    with the service grid's (integer offset) and cover it, e.g. the 67 x 82 parent grid.

    Raises
    ------
    GridMismatchError
        Wrong projection, cell size, misaligned or too small a grid.
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
        raise GridMismatchError(
            path,
            f"the {g.ncols} x {g.nrows} grid at ({g.xorig:g}, {g.yorig:g}) "
            f"does not contain the {s.ncols} x {s.nrows} service grid "
            f"at ({s.xorig_m:g}, {s.yorig_m:g})",
        )
    return r0, c0
