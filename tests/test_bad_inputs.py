"""A corpus of bad input files, each run through the daily pipeline after a good forecast.

For every case: a good day is published first (once per module, with a fake forecaster),
then one input is replaced by a bad one and the same date is run again. The run must not
succeed; its message must name the file and the problem, without a traceback; the
published field must stay byte-identical and no field row may be added.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
from click.testing import CliRunner

from models.artifact import read_card
from service.features import FEATURE_NAMES
from service.formats.ioapi import BADVAL3
from service.jobs import run_daily_forecast
from service.settings import GridSpec, Settings
from service.storage.db import make_engine, session_factory
from service.storage.migrate import upgrade
from service.storage.tables import Publication, Run, RunField, RunStatus
from service.twin.domains import WrfDomain, parent_spec
from service.twin.files import write_cmaq_file, write_wrf_file
from service.twin.sample import sample_cmaq_fields, sample_weather, write_sample_day

from . import badfiles as bf
from .conftest import DAY

CMAQ_DIR = Path("cmaq") / f"{DAY:%Y%m%d}"
WRF_DIR = Path("wrf") / f"{DAY:%Y%m%d}"
FIFTY_MILLION = 50_000_000


class FakeForecaster:
    """Predicts CMAQ's own PM2.5: enough to publish a real field without TensorFlow."""

    card = replace(read_card(Settings().model_path), name="fake", version="0")
    path = Path("fake.keras")

    def predict(self, tensor: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(tensor[..., FEATURE_NAMES.index("pm25")], np.float32)


@dataclass(frozen=True)
class Published:
    root: Path
    field: bytes
    run_id: int
    sha256: dict[str, str]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """A good sample day and a database holding its published forecast; built once."""
    root = tmp_path_factory.mktemp("published")
    write_sample_day(root / "inbox", DAY, GridSpec())
    url = f"sqlite:///{root}/pm25.sqlite"
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(inbox=root / "inbox", database_url=url, input_settle_seconds=0)
    out = run_daily_forecast(
        DAY, settings=settings, sessions=session_factory(engine), forecaster=FakeForecaster
    )
    assert out.status == RunStatus.SUCCEEDED, out.message
    with session_factory(engine)() as s:
        field = s.get(RunField, out.run_id)
        assert field is not None
        data = bytes(field.data)
    engine.dispose()
    files = sorted(p for p in (root / "inbox").rglob("*") if p.is_file())
    return Published(root, data, out.run_id, {str(p): _sha(p) for p in files})


@dataclass(frozen=True)
class Inbox:
    """A test's own inbox (hard links to the good one) and a scratch folder."""

    root: Path
    scratch: Path

    @property
    def cmaq(self) -> Path:
        return next((self.root / CMAQ_DIR).glob("*.nc"))

    @property
    def wrf(self) -> Path:
        return next((self.root / WRF_DIR).glob("wrfout_d01_*"))


@pytest.fixture
def env(tmp_path: Path, published: Published) -> Iterator[tuple[Inbox, Settings]]:
    shutil.copytree(published.root / "inbox", tmp_path / "inbox", copy_function=os.link)
    shutil.copy(published.root / "pm25.sqlite", tmp_path / "pm25.sqlite")
    (tmp_path / "scratch").mkdir()
    settings = Settings(
        inbox=tmp_path / "inbox",
        database_url=f"sqlite:///{tmp_path}/pm25.sqlite",
        input_settle_seconds=0,
    )
    yield Inbox(tmp_path / "inbox", tmp_path / "scratch"), settings
    for path, digest in published.sha256.items():  # no case may write through a link
        assert _sha(Path(path)) == digest, f"{path} was changed by a test"


# --- the cases -----------------------------------------------------------------------------

Make = Callable[[Inbox], None]


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, the words its message must hold, the file(s) named."""

    id: str
    make: Make
    words: tuple[str, ...]
    names: tuple[str, ...] = ("{cmaq}",)
    status: RunStatus = RunStatus.FAILED


def _cmaq_from(
    fields: Callable[[], dict[str, np.ndarray]] | None = None,
    times: Callable[[], list[dt.datetime]] = lambda: _hours(),
    spec: GridSpec | None = None,
) -> Make:
    """Rewrite the inbox's CMAQ file from sample fields (optionally changed)."""

    def make(inbox: Inbox) -> None:
        hours = times()
        grid = spec or parent_spec(GridSpec())
        data = fields() if fields else sample_cmaq_fields(grid, hours)
        bf.replace(inbox.cmaq, write_cmaq_file(inbox.scratch / "c.nc", data, hours, grid))

    return make


def _overwrite(which: str, write: Callable[[Path], object]) -> Make:
    """Put something else (text, garbage, a foreign file) under the input's own name."""

    def make(inbox: Inbox) -> None:
        path = _target(inbox, which)
        path.unlink()
        write(path)

    return make


def _truncate(which: str, keep: float) -> Make:
    def make(inbox: Inbox) -> None:
        bf.truncated(_target(inbox, which), keep)

    return make


def _hours() -> list[dt.datetime]:
    from service.ingest import forecast_hours

    return forecast_hours(DAY)


def _fields_with(**changes: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
    f = sample_cmaq_fields(parent_spec(GridSpec()), _hours())
    for name, change in changes.items():
        f[name] = change(f[name].copy())
    return f


def _set(index: tuple[int, ...], value: float) -> Callable[[np.ndarray], np.ndarray]:
    def change(a: np.ndarray) -> np.ndarray:
        a[index] = value
        return a

    return change


def _pm25_as(
    dims: tuple[str, ...], data: Callable[[np.ndarray], np.ndarray], dtype: str = "f4"
) -> Make:
    def make(inbox: Inbox) -> None:
        with netCDF4.Dataset(inbox.cmaq) as ds:
            pm = np.asarray(ds.variables["PM2_5"][:])
            attrs = {k: ds.variables["PM2_5"].getncattr(k) for k in ds.variables["PM2_5"].ncattrs()}
        _copy("cmaq", variables={"PM2_5": (dims, dtype, data(pm), attrs)})(inbox)

    return make


def _huge(which: str, dim: str, length: int = FIFTY_MILLION) -> Make:
    def make(inbox: Inbox) -> None:
        path = _target(inbox, which)
        bf.replace(path, bf.with_huge_dimension(path, inbox.scratch / "huge.nc", dim, length))

    return make


def _second_cmaq(
    change: Callable[[dict[str, np.ndarray]], None], hours: slice = slice(None)
) -> Make:
    """Add a second CMAQ file holding (some of) the same hours, with changed values."""

    def make(inbox: Inbox) -> None:
        from service.ingest import forecast_hours

        times = forecast_hours(DAY)[hours]
        spec = parent_spec(GridSpec())
        f = {k: v[hours] for k, v in sample_cmaq_fields(spec, forecast_hours(DAY)).items()}
        change(f)
        write_cmaq_file(inbox.root / CMAQ_DIR / "CCTM_ACONC_rerun.nc", f, times, spec)

    return make


def _skip_hour_at_step_10(flags: np.ndarray) -> None:
    flags[10:, :, 1] += 10000  # from step 10 (01 UTC) on, each an hour late: 01 UTC is skipped


def _double_pm25(f: dict[str, np.ndarray]) -> None:
    f["pm25"] *= 2


def _stray(name: str, make_file: Callable[[Path], object]) -> Make:
    def make(inbox: Inbox) -> None:
        make_file(inbox.root / CMAQ_DIR / name)

    return make


def _foreign_netcdf(path: Path) -> None:
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 3)
        ds.createVariable("elevation", "f4", ("x",))[:] = [1, 2, 3]


def _claims_ioapi_but_broken(path: Path) -> None:
    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as ds:
        ds.createDimension("TSTEP", None)
        ds.createDimension("VAR", 1)
        ds.createDimension("DATE-TIME", 2)
        ds.createVariable("TFLAG", "i4", ("TSTEP", "VAR", "DATE-TIME"))[0] = [[2024008, 150000]]
        ds.SDATE = np.int32(2024008)


def _dangling(inbox: Inbox) -> None:
    (inbox.root / CMAQ_DIR / "CCTM_ACONC_extra.nc").symlink_to(inbox.scratch / "gone.nc")


def _directory(subdir: Path, name: str) -> Make:
    def make(inbox: Inbox) -> None:
        (inbox.root / subdir / name).mkdir()

    return make


# WRF helpers


def _target(inbox: Inbox, which: str) -> Path:
    return inbox.cmaq if which == "cmaq" else inbox.wrf


def _edit(which: str, *changes: Callable[[netCDF4.Dataset], object]) -> Make:
    """Change the CMAQ or WRF input in place (through :func:`badfiles.edit`)."""

    def make(inbox: Inbox) -> None:
        with bf.edit(_target(inbox, which)) as ds:
            for change in changes:
                change(ds)

    return make


def _copy(which: str, **kw: Any) -> Make:
    """Replace the CMAQ or WRF input by a copy changed as :func:`badfiles.copy_netcdf` says."""

    def make(inbox: Inbox) -> None:
        path = _target(inbox, which)
        bf.replace(path, bf.copy_netcdf(path, inbox.scratch / "copy.nc", **kw))

    return make


def _attrs(**attrs: Any) -> Callable[[netCDF4.Dataset], None]:
    def change(ds: netCDF4.Dataset) -> None:
        for k, v in attrs.items():
            ds.setncattr(k, v)

    return change


def _tflag(change: Callable[[np.ndarray], None]) -> Callable[[netCDF4.Dataset], None]:
    def edit(ds: netCDF4.Dataset) -> None:
        flags = ds.variables["TFLAG"][:]
        change(flags)
        ds.variables["TFLAG"][:] = flags

    return edit


def _scale(
    name: str, factor: float, units: str | None = None, offset: float = 0.0
) -> Callable[[netCDF4.Dataset], None]:
    def change(ds: netCDF4.Dataset) -> None:
        var = ds.variables[name]
        var[:] = var[:] * factor + offset
        if units is not None:
            var.units = units

    return change


def _each(
    names: tuple[str, ...], factor: float, units: str | None = None
) -> Callable[[netCDF4.Dataset], None]:
    def change(ds: netCDF4.Dataset) -> None:
        for name in names:
            _scale(name, factor, units)(ds)

    return change


def _value(name: str, index: tuple[int, ...], value: float) -> Callable[[netCDF4.Dataset], None]:
    def change(ds: netCDF4.Dataset) -> None:
        ds.variables[name][index] = value

    return change


def _times(k: int, text: str) -> Callable[[netCDF4.Dataset], None]:
    def change(ds: netCDF4.Dataset) -> None:
        ds.variables["Times"][k] = netCDF4.stringtochar(np.array([text], "S19"))

    return change


def _swap_records(a: int, b: int) -> Callable[[netCDF4.Dataset], None]:
    """Swap two records' Times (the data stay): every hour present, out of order."""

    def change(ds: netCDF4.Dataset) -> None:
        times = ds.variables["Times"]
        times.set_auto_chartostring(False)
        first, second = times[a].copy(), times[b].copy()
        times[a], times[b] = second, first

    return change


def _wrf_rewrite(
    domain: WrfDomain | None = None, shift_days: int = 0, records: slice = slice(None)
) -> Make:
    def make(inbox: Inbox) -> None:
        from service.ingest.wrf import wrf_hours
        from service.twin.domains import wrf_domain

        d = domain or wrf_domain(GridSpec())
        times = [t + dt.timedelta(days=shift_days) for t in wrf_hours(DAY)][records]
        init = times[0] - dt.timedelta(hours=3)
        new = write_wrf_file(
            inbox.scratch / "w.nc", d, times, sample_weather(d, times, init), init_time=init
        )
        bf.replace(inbox.wrf, new)

    return make


def _second_wrf(change: Callable[[netCDF4.Dataset], None]) -> Make:
    def make(inbox: Inbox) -> None:
        copy = inbox.root / WRF_DIR / f"{inbox.wrf.name}_rerun"
        shutil.copy(inbox.wrf, copy)
        with netCDF4.Dataset(copy, "a") as ds:
            change(ds)

    return make


def _shift_grid(ds: netCDF4.Dataset) -> None:
    ds.variables["XLAT"][:] = ds.variables["XLAT"][:] + 0.5


def _wrf_without_records(inbox: Inbox) -> None:
    with netCDF4.Dataset(inbox.wrf) as ds:
        empty = {
            name: (v.dimensions, v.dtype, np.empty((0, *v.shape[1:]), v.dtype), {})
            for name, v in ds.variables.items()
        }
    _copy("wrf", variables=empty)(inbox)


def _swap_t2_axes(inbox: Inbox) -> None:
    with netCDF4.Dataset(inbox.wrf) as ds:
        t2 = np.asarray(ds.variables["T2"][:])
        attrs = {k: ds.variables["T2"].getncattr(k) for k in ds.variables["T2"].ncattrs()}
    swapped = np.ascontiguousarray(t2.transpose(0, 2, 1))
    _copy("wrf", variables={"T2": (("Time", "west_east", "south_north"), "f4", swapped, attrs)})(
        inbox
    )


C, W = "{cmaq}", "{wrf}"
SMALL = GridSpec(ncols=30, nrows=30)
CASES = [
    # not netCDF, or a damaged file
    Case("cmaq-zero-bytes", _truncate("cmaq", 0), ("file is empty (0 bytes)",)),
    Case("cmaq-html-named-nc", _overwrite("cmaq", bf.text_file), ("not a netCDF file", "<htm")),
    Case("cmaq-hdf5-garbage", _overwrite("cmaq", bf.hdf5_garbage), ("cannot be opened as netCDF",)),
    Case("cmaq-truncated-half", _truncate("cmaq", 0.5), ("file is truncated (", " bytes)")),
    Case(
        "cmaq-truncated-in-header",
        _truncate("cmaq", 0.00005),
        ("cannot be opened as netCDF", "truncated"),
    ),
    # dimensions no real file has: nothing is read, the run fails at once
    Case(
        "cmaq-50-million-steps",
        _huge("cmaq", "TSTEP"),
        ("dimension 'TSTEP' declares 50,000,000", "nothing was read"),
    ),
    Case(
        "cmaq-million-rows",
        _huge("cmaq", "ROW", 1_000_000),
        ("dimension 'ROW' declares 1,000,000",),
    ),
    Case("cmaq-100k-layers", _huge("cmaq", "LAY", 100_000), ("dimension 'LAY' declares 100,000",)),
    Case(
        "cmaq-million-variables",
        _huge("cmaq", "VAR", 1_000_000),
        ("dimension 'VAR' declares 1,000,000",),
    ),
    Case(
        "cmaq-huge-chunks",
        _copy("cmaq", fmt="NETCDF4", dims={"TSTEP": None}, chunks={"PM2_5": (10_000, 1, 82, 67)}),
        ("'PM2_5' is stored in chunks of", "MiB"),
    ),
    Case(
        "cmaq-rows-disagree-with-nrows",
        _edit("cmaq", _attrs(NROWS=np.int32(80))),
        ("dimension 'ROW' is 82 but the header's NROWS is 80",),
    ),
    Case(
        "cmaq-date-time-of-3",
        _copy("cmaq", dims={"DATE-TIME": 3}, skip=("TFLAG",)),
        ("'DATE-TIME'",),
    ),
    # variables laid out wrongly
    Case(
        "cmaq-pm25-2d",
        _pm25_as(("ROW", "COL"), lambda a: a[0, 0]),
        ("'PM2_5' has dimensions (ROW, COL), expected (TSTEP, LAY, ROW, COL)",),
    ),
    Case(
        "cmaq-pm25-rows-and-columns-swapped",
        _pm25_as(("TSTEP", "LAY", "COL", "ROW"), lambda a: a.transpose(0, 1, 3, 2)),
        ("'PM2_5' has dimensions (TSTEP, LAY, COL, ROW)",),
    ),
    Case(
        "cmaq-pm25-characters",
        _pm25_as(("TSTEP", "LAY", "ROW", "COL"), lambda a: np.full(a.shape, b"x", "S1"), "S1"),
        ("'PM2_5' holds", "not numbers"),
    ),
    Case(
        "cmaq-no-so2",
        _cmaq_from(lambda: {k: v for k, v in _fields_with().items() if k != "so2"}),
        ("variable for sulphur dioxide mixing ratio is missing", "looked for SO2"),
    ),
    Case("cmaq-no-tflag", _copy("cmaq", skip=("TFLAG",)), ("variable 'TFLAG' is missing",)),
    Case(
        "cmaq-no-xorig",
        _edit("cmaq", lambda ds: ds.delncattr("XORIG")),
        ("not an I/O API file", "XORIG"),
    ),
    Case(
        "cmaq-xorig-nan",
        _edit("cmaq", _attrs(XORIG=np.float64(np.nan))),
        ("global attribute XORIG is not a number",),
    ),
    # grid and projection
    Case(
        "cmaq-other-projection",
        _edit("cmaq", _attrs(P_ALP=np.float64(25.0))),
        ("projection differs", "P_ALP=25"),
    ),
    Case(
        "cmaq-lat-lon-grid", _edit("cmaq", _attrs(GDTYP=np.int32(1))), ("GDTYP is 1, expected 2",)
    ),
    Case(
        "cmaq-misaligned",
        _edit("cmaq", _attrs(XORIG=np.float64(-180000 + 4500))),
        ("does not align",),
    ),
    Case("cmaq-12km-cells", _edit("cmaq", _attrs(XCELL=np.float64(12000))), ("cell size 12000",)),
    Case(
        "cmaq-grid-too-small",
        _cmaq_from(lambda: sample_cmaq_fields(SMALL, _hours()), spec=SMALL),
        ("does not contain the 59 x 68 service grid",),
    ),
    # time
    Case(
        "cmaq-4-hours-missing",
        _cmaq_from(lambda: {k: v[:20] for k, v in _fields_with().items()}, lambda: _hours()[:20]),
        ("4 of the 24 hours of 2024-01-09 KST are missing", "20 KST"),
    ),
    Case(
        "cmaq-wrong-month",
        _cmaq_from(times=lambda: [t + dt.timedelta(days=30) for t in _hours()]),
        ("wrong dates", "2024-02-07"),
    ),
    Case(
        "cmaq-tflag-zeroed-step",
        _edit("cmaq", _tflag(lambda f: f.__setitem__(3, 0))),
        ("TFLAG of step 3 is not a valid date",),
    ),
    Case(
        "cmaq-tflag-hour-twice",
        _edit("cmaq", _tflag(lambda f: f.__setitem__(5, f[4]))),
        ("hour 2024-01-08 19:00 UTC appears 2 times in TFLAG",),
    ),
    Case(
        "cmaq-tflag-skips-an-hour",
        _edit("cmaq", _tflag(_skip_hour_at_step_10)),
        ("TFLAG of step 10 is", "SDATE/STIME plus 10 x TSTEP"),
    ),
    Case(
        "cmaq-sdate-disagrees",
        _edit("cmaq", _attrs(SDATE=np.int32(2024010))),
        ("TFLAG starts at 2024-01-08 15:00 UTC but SDATE/STIME say 2024-01-10 15:00 UTC",),
    ),
    Case(
        "cmaq-tflag-differs-between-variables",
        _edit("cmaq", _tflag(lambda f: f.__setitem__((slice(None), 2, 0), 2023001))),
        ("TFLAG differs between variables at step 0", "variable O3 says (2023001"),
    ),
    Case(
        "cmaq-3-hourly",
        _edit("cmaq", _attrs(TSTEP=np.int32(30000))),
        ("TSTEP is 30000, expected 10000",),
    ),
    # values
    Case(
        "cmaq-nan",
        _cmaq_from(lambda: _fields_with(pm25=_set((2, 40, 30), np.nan))),
        ("variable 'PM2_5' has 1 NaN", "TSTEP=2, LAY=0, ROW=40, COL=30"),
    ),
    Case(
        "cmaq-infinity",
        _cmaq_from(lambda: _fields_with(co=_set((7, 10, 11), np.inf))),
        ("variable 'CO' has 1 infinite", "TSTEP=7, LAY=0, ROW=10, COL=11"),
    ),
    Case(
        "cmaq-badval3",
        _cmaq_from(lambda: _fields_with(no2=_set((0, 20, 20), BADVAL3))),
        ("variable 'NO2' has 1 BADVAL3", "ROW=20, COL=20"),
    ),
    # the model's margin ring (FakeForecaster's card reads 4 cells beyond the grid): checked
    # like the grid, never filled by repeated edges
    Case(
        "cmaq-nan-in-margin-ring",
        _cmaq_from(lambda: _fields_with(pm25=_set((2, 3, 30), np.nan))),
        ("variable 'PM2_5' has 1 NaN", "TSTEP=2, LAY=0, ROW=3, COL=30"),
    ),
    Case(
        "cmaq-implausible-in-margin-ring",
        _cmaq_from(lambda: _fields_with(pm10=_set((5, 40, 66), 1e6))),
        ("'PM10'", "outside the plausible 0..5000", "ROW=40, COL=66"),
    ),
    Case(
        "cmaq-negative",
        _cmaq_from(lambda: _fields_with(so2=_set((4, 50, 50), -0.001))),
        ("'SO2'", "negative concentrations", "ROW=50, COL=50"),
    ),
    Case(
        "cmaq-pm-zero-filled",
        _cmaq_from(lambda: _fields_with(pm25=lambda a: a * 0, pm10=lambda a: a * 0)),
        ("'PM10'", "far below any real value"),
    ),
    Case(
        "cmaq-pm25-spike",
        _cmaq_from(lambda: _fields_with(pm25=_set((1, 30, 31), 1e5))),
        ("'PM2_5'", "outside the plausible 0..2000"),
    ),
    Case(
        "cmaq-pm10-below-pm25-everywhere",
        _cmaq_from(lambda: _fields_with(pm10=lambda a: a * 0.5)),
        ("PM10 is below PM2.5 in ", "cell-hours", "swapped"),
    ),
    # units
    Case(
        "cmaq-o3-ppm-labelled-ppbv",
        _edit("cmaq", _scale("O3", 1.0, "ppbV")),
        ("'O3'", "declared 'ppbV'", "far below any real value", "ppm labelled as ppb"),
    ),
    Case(
        "cmaq-co-ppb-labelled-ppmv",
        _edit("cmaq", _scale("CO", 1000, "ppmV")),
        ("'CO'", "look like another unit, ppb labelled as ppm"),
    ),
    Case(
        "cmaq-no2-ppb-labelled-ppmv",
        _edit("cmaq", _scale("NO2", 1000, "ppmV")),
        ("'NO2'", "ppb labelled as ppm"),
    ),
    Case(
        "cmaq-pm25-kg-per-m3",
        _edit("cmaq", _scale("PM2_5", 1e-9, "ug/m**3")),
        ("'PM2_5'", "kg/m3 labelled as ug/m3"),
    ),
    Case(
        "cmaq-pm25-mg-labelled-ug",
        _edit("cmaq", _scale("PM2_5", 1e-3)),
        ("'PM2_5'", "mg/m3 labelled as ug/m3"),
    ),
    Case(
        "cmaq-pm10-a-hundredth",
        _edit("cmaq", _scale("PM10", 1e-2)),
        ("'PM10'", "about 100 times too small"),
    ),
    Case(
        "cmaq-co-mol-per-mol",
        _edit("cmaq", _scale("CO", 1.0, "mol/mol")),
        ("'CO' has units 'mol/mol'; expected ppmV or ppbV",),
    ),
    Case(
        "cmaq-o3-in-ug",
        _edit("cmaq", _scale("O3", 1.0, "ug/m**3")),
        ("'O3' has units 'ug/m**3'; expected ppmV or ppbV",),
    ),
    Case("cmaq-no-units", _edit("cmaq", _scale("PM10", 1.0, "")), ("'PM10' has units ''",)),
    # duplicates, strays and things that are not files
    Case(
        "cmaq-conflicting-copy",
        _second_cmaq(_double_pm25),
        ("different values", "PM2_5", "the second 2 times the first"),
        (C, "CCTM_ACONC_rerun.nc"),
    ),
    Case(
        "cmaq-conflicting-overlap-hour",
        _second_cmaq(_double_pm25, slice(23, 24)),
        ("holds 2024-01-09 14:00 UTC like", "different values"),
        (C, "CCTM_ACONC_rerun.nc"),
    ),
    Case(
        "cmaq-stray-claims-ioapi",
        _stray("notes.nc", _claims_ioapi_but_broken),
        ("not an I/O API file",),
        ("notes.nc",),
    ),
    Case(
        "cmaq-stray-text", _stray("README.nc", bf.text_file), ("not a netCDF file",), ("README.nc",)
    ),
    Case(
        "cmaq-only-a-foreign-netcdf",
        _overwrite("cmaq", _foreign_netcdf),
        ("no cmaq input: skipped", "not I/O API output"),
    ),
    Case(
        "cmaq-directory-named-nc",
        _directory(CMAQ_DIR, "CCTM_ACONC_extra.nc"),
        ("is a directory, not a netCDF file",),
        ("CCTM_ACONC_extra.nc",),
    ),
    Case(
        "cmaq-dangling-symlink",
        _dangling,
        ("is a symbolic link to", "gone.nc", "which does not exist"),
        ("CCTM_ACONC_extra.nc",),
        RunStatus.WAITING,
    ),
    Case(
        "cmaq-symlink-loop",
        _stray("loop.nc", lambda p: p.symlink_to(p.name)),
        ("is a symbolic link loop",),
        ("loop.nc",),
    ),
    # WRF
    Case(
        "wrf-50-million-records",
        _huge("wrf", "Time"),
        ("dimension 'Time' declares 50,000,000",),
        (W,),
    ),
    Case(
        "wrf-huge-grid",
        _huge("wrf", "south_north", 100_000),
        ("dimension 'south_north' declares 100,000",),
        (W,),
    ),
    Case("wrf-zero-bytes", _truncate("wrf", 0), ("file is empty",), (W,)),
    Case("wrf-truncated", _truncate("wrf", 0.7), ("file is truncated",), (W,)),
    Case("wrf-text", _overwrite("wrf", bf.text_file), ("not a netCDF file",), (W,)),
    Case(
        "wrf-times-garbage",
        _edit("wrf", _times(3, "2024-13-45_99:00:00")),
        ("Times[3] = '2024-13-45_99:00:00' is not a WRF time",),
        (W,),
    ),
    Case(
        "wrf-two-records-swapped",
        _edit("wrf", _swap_records(3, 4)),
        (
            "records out of order: Times[4] = 2024-01-08_17:00:00 comes after Times[3] = 2024-01-08_18",
        ),
        (W,),
    ),
    Case("wrf-times-three-days-early", _wrf_rewrite(shift_days=-3), ("wrong dates",), (W,)),
    Case(
        "wrf-record-before-midnight-missing",
        _wrf_rewrite(records=slice(1, None)),
        ("1 of the 25 hourly records needed are missing: 2024-01-08 14:00",),
        (W,),
    ),
    Case("wrf-no-records", _wrf_without_records, ("holds no records",), (W,)),
    Case(
        "wrf-datestrlen-10",
        _copy("wrf", dims={"DateStrLen": 10}, skip=("Times",)),
        ("'DateStrLen' is 10, expected 19",),
        (W,),
    ),
    Case("wrf-no-xlat", _copy("wrf", skip=("XLAT",)), ("variable 'XLAT' is missing",), (W,)),
    Case(
        "wrf-nan-in-xlat",
        _edit("wrf", _value("XLAT", (0, 30, 31), np.nan)),
        ("variable 'XLAT' has 1 NaN", "Time=0, south_north=30, west_east=31"),
        (W,),
    ),
    Case("wrf-no-t2", _copy("wrf", skip=("T2",)), ("variable 'T2' is missing",), (W,)),
    Case(
        "wrf-t2-axes-swapped",
        _swap_t2_axes,
        ("'T2' has dimensions (Time, west_east, south_north)",),
        (W,),
    ),
    Case(
        "wrf-infinite-psfc",
        _edit("wrf", _value("PSFC", (6, 40, 41), np.inf)),
        ("variable 'PSFC' has 1 infinite", "Time=6, south_north=40, west_east=41"),
        (W,),
    ),
    Case(
        "wrf-infinite-psfc-in-margin-ring",
        _edit("wrf", _value("PSFC", (6, 6, 41), np.inf)),
        ("variable 'PSFC' has 1 infinite", "Time=6, south_north=6, west_east=41"),
        (W,),
    ),
    Case(
        "wrf-t2-celsius-labelled-k",
        _edit("wrf", _scale("T2", 1.0, offset=-273.15)),
        ("'T2'", "look like another unit, degC labelled as K"),
        (W,),
    ),
    Case(
        "wrf-psfc-hpa-labelled-pa",
        _edit("wrf", _scale("PSFC", 0.01)),
        ("'PSFC'", "look like another unit, hPa labelled as Pa"),
        (W,),
    ),
    Case(
        "wrf-psfc-pa-labelled-hpa",
        _edit("wrf", _scale("PSFC", 1.0, "hPa")),
        ("'PSFC'", "declared 'hPa'", "Pa labelled as hPa"),
        (W,),
    ),
    Case(
        "wrf-q2-g-per-kg-labelled-kg-per-kg",
        _edit("wrf", _scale("Q2", 1000.0)),
        ("'Q2'", "look like another unit, g/kg labelled as kg/kg"),
        (W,),
    ),
    Case(
        "wrf-rain-mm-labelled-m",
        _edit("wrf", _each(("RAINC", "RAINNC"), 1.0, "m")),
        ("hourly RAINC + RAINNC", "mm labelled as m"),
        (W,),
    ),
    Case(
        "wrf-wind-cm-per-s",
        _edit("wrf", _each(("U10", "V10"), 100.0)),
        ("wind speed from U10 and V10", "cm/s labelled as m/s"),
        (W,),
    ),
    Case(
        "wrf-wind-zero-filled",
        _edit("wrf", _each(("U10", "V10"), 0.0)),
        ("wind speed from U10 and V10", "far below any real value"),
        (W,),
    ),
    Case(
        "wrf-t2-fahrenheit",
        _edit("wrf", _scale("T2", 1.0, "F")),
        ("'T2' has units 'F'; expected 'K'",),
        (W,),
    ),
    Case(
        "wrf-mercator-attributes",
        _edit("wrf", _attrs(MAP_PROJ=np.int32(3), TRUELAT1=np.float32(30.0))),
        ("not a regular grid in the Mercator",),
        (W,),
    ),
    Case(
        "wrf-unknown-map-proj",
        _edit("wrf", _attrs(MAP_PROJ=np.int32(99))),
        ("MAP_PROJ=99 is not supported",),
        (W,),
    ),
    Case(
        "wrf-small-domain",
        _wrf_rewrite(WrfDomain(GridSpec(ncols=40, nrows=50, name="SMALL"))),
        ("does not cover the service grid",),
        (W,),
    ),
    Case(
        "wrf-bad-start-date",
        _edit("wrf", _attrs(SIMULATION_START_DATE="yesterday")),
        ("SIMULATION_START_DATE 'yesterday'",),
        (W,),
    ),
    Case(
        "wrf-conflicting-copy",
        _second_wrf(_scale("T2", 1.0, offset=2.0)),
        ("different values", "T2 differs by up to 2"),
        (W, "_rerun"),
    ),
    Case(
        "wrf-copy-of-another-domain",
        _second_wrf(_shift_grid),
        ("XLAT/XLONG differ", "different domains"),
        ("_rerun",),
    ),
    Case(
        "wrf-directory-named-wrfout",
        _directory(WRF_DIR, "wrfout_d01_2024-01-09_00:00:00"),
        ("is a directory",),
        ("wrfout_d01_2024-01-09_00:00:00",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_input_fails_the_run_and_leaves_the_forecast_alone(
    case: Case, env: tuple[Inbox, Settings], published: Published
) -> None:
    inbox, settings = env
    names = [n.format(cmaq=inbox.cmaq.name, wrf=inbox.wrf.name) for n in case.names]
    case.make(inbox)
    engine = make_engine(settings.database_url.get_secret_value())
    sessions = session_factory(engine)
    try:
        out = run_daily_forecast(
            DAY, settings=settings, sessions=sessions, forecaster=FakeForecaster
        )
        assert out.status == case.status, out.message
        print(f"{case.id}: {out.message}")  # the corpus of messages, with pytest -s
        for word in (*names, *case.words):
            assert word in out.message, f"{word!r} not in {out.message!r}"
        assert "Traceback" not in out.message and 'File "' not in out.message
        with sessions() as s:
            assert s.query(RunField).count() == 1, "a field row was added"
            pub = s.get(Publication, DAY)
            assert pub is not None and pub.run_id == published.run_id
            field = s.get(RunField, published.run_id)
            assert field is not None and bytes(field.data) == published.field
            run = s.get(Run, out.run_id)
            assert run is not None and run.error == out.message
    finally:
        engine.dispose()


def test_a_grid_short_of_the_models_margin_publishes_with_a_note_on_the_run(
    env: tuple[Inbox, Settings],
) -> None:
    """Only missing coverage falls back to repeated edges, and the run's record says so."""
    inbox, settings = env
    spec = parent_spec(GridSpec(), 2, 2)  # holds the grid, but 2 of the model's 4 margin cells
    _cmaq_from(lambda: sample_cmaq_fields(spec, _hours()), spec=spec)(inbox)
    engine = make_engine(settings.database_url.get_secret_value())
    try:
        out = run_daily_forecast(
            DAY, settings=settings, sessions=session_factory(engine), forecaster=FakeForecaster
        )
        assert out.status == RunStatus.SUCCEEDED and not out.fallback, out.message
        assert "do not cover the model's margin of 4 cells" in out.message
        assert inbox.cmaq.name in out.message and "edges were repeated" in out.message
        with session_factory(engine)() as s:
            run = s.get(Run, out.run_id)
            assert run is not None and run.error == out.message
    finally:
        engine.dispose()


def test_an_unreadable_input_folder_fails_the_run_instead_of_waiting(
    env: tuple[Inbox, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, settings = env
    folder = inbox.root / CMAQ_DIR
    scandir = os.scandir

    def denied(path: str | os.PathLike[str] = ".") -> object:  # as chmod 000 (tests run as root)
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", denied)
    engine = make_engine(settings.database_url.get_secret_value())
    try:
        out = run_daily_forecast(
            DAY, settings=settings, sessions=session_factory(engine), forecaster=FakeForecaster
        )
    finally:
        engine.dispose()
    assert out.status == RunStatus.FAILED
    assert out.message == f"{folder}: cannot be read: Permission denied"


def test_the_corpus_is_large_and_every_case_distinct() -> None:
    assert len(CASES) >= 45
    assert len({c.id for c in CASES}) == len(CASES)


# --- fifty million steps: fail fast, in little memory ----------------------------------------

PROBE = textwrap.dedent(
    """
    import datetime as dt, json, resource, sys, time
    from pathlib import Path
    from service.errors import InputFileError
    from service.grid import Grid
    from service.ingest import read_analysis, read_cmaq, read_wrf
    from service.settings import GridSpec

    grid, day, report = Grid(GridSpec()), dt.date(2024, 1, 9), {}
    for kind, reader, path in zip(("cmaq", "wrf", "analysis"),
                                  (read_cmaq, read_wrf, read_analysis), sys.argv[1:4]):
        t0 = time.perf_counter()
        try:
            reader([path], day, grid)
            message = None
        except InputFileError as exc:
            message = str(exc)
        report[kind] = {"seconds": time.perf_counter() - t0, "message": message}
    # VmHWM: the peak resident size since exec. ru_maxrss would also count the parent's
    # size at fork (Linux keeps the high-water mark across exec), which a test run that has
    # loaded TensorFlow inflates to about a gigabyte.
    status = Path("/proc/self/status")
    hwm = [line for line in status.read_text().splitlines() if line.startswith("VmHWM:")] \
        if status.exists() else []
    report["peak_kib"] = int(hwm[0].split()[1]) if hwm \
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(report))
    """
)


def test_fifty_million_steps_fail_in_under_two_seconds_and_one_gigabyte(
    tmp_path: Path, published: Published
) -> None:
    good = published.root / "inbox"
    files = [
        bf.with_huge_dimension(
            next((good / CMAQ_DIR).glob("*.nc")), tmp_path / "cmaq.nc", "TSTEP", FIFTY_MILLION
        ),
        bf.with_huge_dimension(
            next((good / WRF_DIR).glob("wrfout_d01_*")), tmp_path / "wrfout", "Time", FIFTY_MILLION
        ),
        bf.with_huge_dimension(
            next((good / "analysis" / f"{DAY:%Y%m%d}").glob("*.nc")),
            tmp_path / "analysis.nc",
            "TSTEP",
            FIFTY_MILLION,
        ),
    ]
    for f in files:
        assert f.stat().st_size < 12 * 2**20
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for kind, path, dim in zip(
        ("cmaq", "wrf", "analysis"), files, ("TSTEP", "Time", "TSTEP"), strict=True
    ):
        r = report[kind]
        assert r["message"] and str(path) in r["message"], r
        assert f"dimension {dim!r} declares 50,000,000" in r["message"]
        assert r["seconds"] < 2.0, r
    print(json.dumps(report))  # the timings and memory, with pytest -s
    assert report["peak_kib"] < 1024 * 1024, f"peak resident memory {report['peak_kib']} KiB"


def test_pm25_run_exits_non_zero_and_says_why(
    env: tuple[Inbox, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.cli import main
    from service.settings import get_settings

    inbox, settings = env
    _huge("cmaq", "TSTEP")(inbox)
    monkeypatch.setenv("PM25_INBOX", str(settings.inbox))
    monkeypatch.setenv("PM25_DATABASE_URL", settings.database_url.get_secret_value())
    monkeypatch.setenv("PM25_INPUT_SETTLE_SECONDS", "0")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["run", "--date", str(DAY)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    assert "failed" in result.output and inbox.cmaq.name in result.output
    assert "dimension 'TSTEP' declares 50,000,000" in result.output
    assert "Traceback" not in result.output
