"""The Models-3 I/O API netCDF convention (CMAQ output and the analysis): header, TFLAG, writer.

Facts are from FORMATS.md: dimensions ``TSTEP, DATE-TIME, LAY, VAR, ROW, COL``; ``TFLAG``
``[YYYYDDD, HHMMSS]`` in UTC; the grid in global attributes (``GDTYP`` 2 is Lambert); fixed
width padded strings; ``BADVAL3 = -9.999E36`` for missing data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
import numpy.typing as npt

from service.errors import DimensionError, MissingVariableError, TimeCoverageError
from service.formats.netcdf import (
    atomic_path,
    check_dimensions,
    check_variable,
    read_steps,
    read_variable,
)

BADVAL3 = -9.999e36
LAMBERT = 2
UTC = dt.UTC

#: The I/O API dimensions in file order; data variables are ``(TSTEP, LAY, ROW, COL)``.
DIMENSIONS = ("TSTEP", "DATE-TIME", "LAY", "VAR", "ROW", "COL")
DATA_DIMENSIONS = ("TSTEP", "LAY", "ROW", "COL")
TFLAG_DIMENSIONS = ("TSTEP", "VAR", "DATE-TIME")

#: The longest each dimension of a real file gets, checked before anything is read.
LIMITS: dict[str, tuple[int, str]] = {
    "TSTEP": (24 * 366, "a leap year of hourly steps"),
    "DATE-TIME": (2, "YYYYDDD and HHMMSS"),
    "LAY": (200, "the I/O API allows 100 layers, 200 in extended builds"),
    "VAR": (16384, "the I/O API allows 2048 variables, more in custom builds"),
    "ROW": (20_000, "a 1 km grid over all of Asia"),
    "COL": (20_000, "a 1 km grid over all of Asia"),
}

_HEADER_INTS = ("GDTYP", "NCOLS", "NROWS", "NLAYS", "NVARS", "SDATE", "STIME", "TSTEP")
_HEADER_FLOATS = ("P_ALP", "P_BET", "P_GAM", "XCENT", "YCENT", "XORIG", "YORIG", "XCELL", "YCELL")


@dataclass(frozen=True)
class IoapiGrid:
    """The grid part of an I/O API header (Lambert, GDTYP 2)."""

    gdnam: str
    p_alp: float
    p_bet: float
    p_gam: float
    xcent: float
    ycent: float
    xorig: float
    yorig: float
    xcell: float
    ycell: float
    ncols: int
    nrows: int


@dataclass(frozen=True)
class IoapiHeader:
    """The grid and time description of an I/O API file (its global attributes)."""

    gdtyp: int
    grid: IoapiGrid
    nlays: int
    sdate: int
    stime: int
    tstep: int
    var_list: tuple[str, ...]
    nvars: int


def _attr_str(ds: netCDF4.Dataset, name: str) -> str:
    value = ds.getncattr(name) if name in ds.ncattrs() else ""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip()


def looks_like_ioapi(ds: netCDF4.Dataset) -> bool:
    """Whether a file carries any mark of the I/O API: ``TFLAG``, a header attribute or an
    I/O API dimension. A file with none of them is not I/O API output, whatever its name."""
    return (
        "TFLAG" in ds.variables
        or bool(set(ds.ncattrs()) & {*_HEADER_INTS, *_HEADER_FLOATS, "VAR-LIST", "IOAPI_VERSION"})
        or bool(set(ds.dimensions) & {"TSTEP", "DATE-TIME", "LAY", "VAR"})
    )


def read_header(ds: netCDF4.Dataset, path: str | Path) -> IoapiHeader:
    """Parse the I/O API global attributes, or raise :class:`MissingVariableError`."""
    present = set(ds.ncattrs())
    missing = [n for n in (*_HEADER_INTS, *_HEADER_FLOATS) if n not in present]
    if missing:
        raise MissingVariableError(
            path, f"not an I/O API file: global attribute(s) {', '.join(missing)} missing"
        )
    if "TFLAG" not in ds.variables:
        raise MissingVariableError(path, "not an I/O API file: variable 'TFLAG' is missing")
    raw_list = _attr_str(ds, "VAR-LIST")
    names = tuple(raw_list[i : i + 16].strip() for i in range(0, len(raw_list), 16))

    def _number(n: str) -> float:
        value = np.asarray(ds.getncattr(n)).ravel()
        if value.size == 0 or value.dtype.kind not in "fiu" or not np.isfinite(value[0]):
            raise MissingVariableError(
                path, f"global attribute {n} is not a number: {value.tolist()}"
            )
        return float(value[0])

    def _i(n: str) -> int:
        return int(_number(n))

    def _f(n: str) -> float:
        return _number(n)

    grid = IoapiGrid(
        gdnam=_attr_str(ds, "GDNAM"),
        p_alp=_f("P_ALP"),
        p_bet=_f("P_BET"),
        p_gam=_f("P_GAM"),
        xcent=_f("XCENT"),
        ycent=_f("YCENT"),
        xorig=_f("XORIG"),
        yorig=_f("YORIG"),
        xcell=_f("XCELL"),
        ycell=_f("YCELL"),
        ncols=_i("NCOLS"),
        nrows=_i("NROWS"),
    )
    return IoapiHeader(
        gdtyp=_i("GDTYP"),
        grid=grid,
        nlays=_i("NLAYS"),
        sdate=_i("SDATE"),
        stime=_i("STIME"),
        tstep=_i("TSTEP"),
        var_list=tuple(n for n in names if n),
        nvars=_i("NVARS"),
    )


def decode_tflag(date: int, time: int) -> dt.datetime:
    """Decode one ``(YYYYDDD, HHMMSS)`` pair to an aware UTC datetime.

    >>> decode_tflag(2024366, 230000)
    datetime.datetime(2024, 12, 31, 23, 0, tzinfo=datetime.timezone.utc)
    """
    year, doy = divmod(int(date), 1000)
    hh, rest = divmod(int(time), 10000)
    mm, ss = divmod(rest, 100)
    return dt.datetime(year, 1, 1, tzinfo=UTC) + dt.timedelta(
        days=doy - 1, hours=hh, minutes=mm, seconds=ss
    )


def encode_tflag(when: dt.datetime) -> tuple[int, int]:
    """Encode an aware datetime as ``(YYYYDDD, HHMMSS)`` in UTC.

    >>> encode_tflag(dt.datetime(2025, 1, 1, 15, tzinfo=dt.UTC))
    (2025001, 150000)
    """
    u = when.astimezone(UTC)
    return u.year * 1000 + u.timetuple().tm_yday, u.hour * 10000 + u.minute * 100 + u.second


def check_layout(ds: netCDF4.Dataset, header: IoapiHeader, path: str | Path) -> None:
    """Check the file's dimensions against the I/O API layout and its own header.

    Raises
    ------
    MissingVariableError
        An I/O API dimension is absent.
    DimensionError
        A dimension disagrees with the header (``ROW`` vs ``NROWS``, ...), ``DATE-TIME`` is
        not 2, or ``TFLAG`` is not ``(TSTEP, VAR, DATE-TIME)``.
    """
    sizes = check_dimensions(ds, path, LIMITS)
    absent = [d for d in DIMENSIONS if d not in sizes]
    if absent:
        raise MissingVariableError(
            path,
            f"dimension(s) {', '.join(absent)} missing; an I/O API file has "
            + ", ".join(DIMENSIONS),
        )
    if sizes["DATE-TIME"] != 2:
        raise DimensionError(path, f"dimension 'DATE-TIME' is {sizes['DATE-TIME']}, expected 2")
    g = header.grid
    for dim, attr, value in (
        ("LAY", "NLAYS", header.nlays),
        ("ROW", "NROWS", g.nrows),
        ("COL", "NCOLS", g.ncols),
        ("VAR", "NVARS", header.nvars),
    ):
        if sizes[dim] != value:
            raise DimensionError(
                path, f"dimension {dim!r} is {sizes[dim]:,} but the header's {attr} is {value:,}"
            )
    check_variable(ds, path, "TFLAG", TFLAG_DIMENSIONS)


def _tstep(header: IoapiHeader) -> dt.timedelta:
    hh, rest = divmod(abs(header.tstep), 10000)
    mm, ss = divmod(rest, 100)
    return dt.timedelta(hours=hh, minutes=mm, seconds=ss)


def read_times(ds: netCDF4.Dataset, path: str | Path, header: IoapiHeader) -> list[dt.datetime]:
    """The UTC time of every step, from ``TFLAG`` of the first variable, checked.

    Call :func:`check_layout` first: it bounds ``TSTEP``, so this reads at most a year of
    steps (8 bytes each).

    Raises
    ------
    TimeCoverageError
        ``TFLAG`` holds values that are not dates (a corrupted or zero-filled file), repeats
        an hour, or does not count up from ``SDATE/STIME`` in steps of ``TSTEP``.
    """
    if len(ds.dimensions["TSTEP"]) == 0:
        return []
    tflag = read_variable(ds, path, "TFLAG", (slice(None), 0, slice(None))).astype(np.int64)
    date, time = tflag[:, 0], tflag[:, 1]
    year, doy = np.divmod(date, 1000)
    ok = (doy >= 1) & (doy <= 366) & (year > 1900) & (year < 2200) & (time >= 0)
    ok &= (time < 240000) & (time % 10000 < 6000) & (time % 100 < 60)
    if not ok.all():
        bad = int(np.argmin(ok))
        raise TimeCoverageError(
            path, f"TFLAG of step {bad} is not a valid date: {date[bad]}, {time[bad]}"
        )
    times = [decode_tflag(int(d), int(t)) for d, t in zip(date, time, strict=True)]
    seen: dict[dt.datetime, int] = {}
    for t in times:
        seen[t] = seen.get(t, 0) + 1
    repeated = [t for t, n in seen.items() if n > 1]
    if repeated:
        raise TimeCoverageError(
            path,
            f"hour {repeated[0]:%Y-%m-%d %H:%M} UTC appears {seen[repeated[0]]} times in TFLAG",
        )
    start = decode_tflag(header.sdate, header.stime) if _valid_date(header) else None
    if start != times[0]:
        said = f"{start:%Y-%m-%d %H:%M} UTC" if start else f"{header.sdate}, {header.stime}"
        raise TimeCoverageError(
            path, f"TFLAG starts at {times[0]:%Y-%m-%d %H:%M} UTC but SDATE/STIME say {said}"
        )
    step = _tstep(header)
    for k, t in enumerate(times):
        if t != start + k * step:
            raise TimeCoverageError(
                path,
                f"TFLAG of step {k} is {t:%Y-%m-%d %H:%M} UTC, expected "
                f"{start + k * step:%Y-%m-%d %H:%M} (SDATE/STIME plus {k} x TSTEP)",
            )
    return times


def _valid_date(header: IoapiHeader) -> bool:
    year, doy = divmod(header.sdate, 1000)
    return 1 <= doy <= 366 and 1900 < year < 2200 and 0 <= header.stime < 240000


def check_tflag_agrees(
    ds: netCDF4.Dataset, path: str | Path, steps: Sequence[int], var_list: Sequence[str]
) -> None:
    """Check that ``TFLAG`` is the same for every variable at the steps to be read.

    Raises
    ------
    TimeCoverageError
        Some variable's ``TFLAG`` differs from the first variable's.
    """
    if not steps:
        return
    flags = read_steps(ds, path, "TFLAG", list(steps), (slice(None), slice(None)))
    differ = (flags != flags[:, :1, :]).any(axis=2)
    if differ.any():
        k, v = (int(i) for i in np.argwhere(differ)[0])
        name = var_list[v] if v < len(var_list) else f"number {v}"
        raise TimeCoverageError(
            path,
            f"TFLAG differs between variables at step {steps[k]}: variable {name} says "
            f"{tuple(int(x) for x in flags[k, v])}, the first says "
            f"{tuple(int(x) for x in flags[k, 0])}",
        )


def _padded(text: str, width: int) -> str:
    return text[:width].ljust(width)


@dataclass(frozen=True)
class IoapiVariable:
    """A variable to write: ``data`` is ``(TSTEP, ROW, COL)`` or ``(TSTEP, LAY, ROW, COL)``."""

    data: npt.NDArray[np.floating]
    units: str
    description: str = ""


def write_ioapi(
    path: str | Path,
    variables: Mapping[str, IoapiVariable],
    times: Sequence[dt.datetime],
    grid: IoapiGrid,
    *,
    filedesc: str = "",
    history: str = "",
    upnam: str = "PM25TWIN",
    created: dt.datetime | None = None,
) -> Path:
    """Write a gridded, hourly, Lambert I/O API file (netCDF-3 classic), atomically.

    Parameters
    ----------
    path
        Target file; written under a temporary name and renamed when complete.
    variables
        Name -> data, units and description, in file order.
    times
        Consecutive hourly UTC times of the steps.
    grid
        Projection and grid description.
    filedesc, history, upnam
        Free-text header fields, padded as the I/O API library does.
    created
        Creation time for ``CDATE/CTIME/WDATE/WTIME``; fixed values keep files reproducible.
    """
    names = list(variables)
    first = np.asarray(next(iter(variables.values())).data)
    nlays = 1 if first.ndim == 3 else first.shape[1]
    nsteps = len(times)
    for i in range(1, nsteps):
        if times[i] - times[i - 1] != dt.timedelta(hours=1):
            raise ValueError("write_ioapi writes hourly files only")
    created = created or dt.datetime(2000, 1, 1, tzinfo=UTC)
    cdate, ctime = encode_tflag(created)
    sdate, stime = encode_tflag(times[0])
    with atomic_path(path) as tmp:
        ds = netCDF4.Dataset(tmp, "w", format="NETCDF3_CLASSIC")
        try:
            ds.createDimension("TSTEP", None)
            ds.createDimension("DATE-TIME", 2)
            ds.createDimension("LAY", nlays)
            ds.createDimension("VAR", len(names))
            ds.createDimension("ROW", grid.nrows)
            ds.createDimension("COL", grid.ncols)
            i32, f64 = np.int32, np.float64
            ds.setncattr("IOAPI_VERSION", _padded("ioapi-3.2: pm25-forecast writer", 80))
            ds.setncattr("EXEC_ID", _padded(upnam, 80))
            for name, value in (
                ("FTYPE", 1),
                ("CDATE", cdate),
                ("CTIME", ctime),
                ("WDATE", cdate),
                ("WTIME", ctime),
                ("SDATE", sdate),
                ("STIME", stime),
                ("TSTEP", 10000),
                ("NTHIK", 1),
                ("NCOLS", grid.ncols),
                ("NROWS", grid.nrows),
                ("NLAYS", nlays),
                ("NVARS", len(names)),
                ("GDTYP", LAMBERT),
            ):
                ds.setncattr(name, i32(value))
            for name, fvalue in (
                ("P_ALP", grid.p_alp),
                ("P_BET", grid.p_bet),
                ("P_GAM", grid.p_gam),
                ("XCENT", grid.xcent),
                ("YCENT", grid.ycent),
                ("XORIG", grid.xorig),
                ("YORIG", grid.yorig),
                ("XCELL", grid.xcell),
                ("YCELL", grid.ycell),
            ):
                ds.setncattr(name, f64(fvalue))
            ds.setncattr("VGTYP", i32(7))
            ds.setncattr("VGTOP", np.float32(5000.0))
            ds.setncattr("VGLVLS", np.array([1.0, 0.9975][: nlays + 1], dtype=np.float32))
            ds.setncattr("GDNAM", _padded(grid.gdnam, 16))
            ds.setncattr("UPNAM", _padded(upnam, 16))
            ds.setncattr("VAR-LIST", "".join(_padded(n, 16) for n in names))
            ds.setncattr("FILEDESC", _padded(filedesc, 80))
            ds.setncattr("HISTORY", _padded(history, 80))

            tflag = ds.createVariable("TFLAG", "i4", ("TSTEP", "VAR", "DATE-TIME"))
            tflag.setncattr("units", "<YYYYDDD,HHMMSS>")
            tflag.setncattr("long_name", _padded("TFLAG", 16))
            tflag.setncattr(
                "var_desc", _padded("Timestep-valid flags:  (1) YYYYDDD or (2) HHMMSS", 80)
            )
            flags = np.array([encode_tflag(t) for t in times], dtype=np.int32)
            tflag[:] = np.broadcast_to(flags[:, None, :], (nsteps, len(names), 2))
            for name, var in variables.items():
                data = np.asarray(var.data, dtype=np.float32)
                if data.ndim == 3:
                    data = data[:, None]
                v = ds.createVariable(name, "f4", ("TSTEP", "LAY", "ROW", "COL"))
                v.setncattr("long_name", _padded(name, 16))
                v.setncattr("units", _padded(var.units, 16))
                v.setncattr("var_desc", _padded(var.description or name, 80))
                v[:] = data
        finally:
            ds.close()
    return Path(path)
