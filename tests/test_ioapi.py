"""The I/O API convention: TFLAG coding, the header we write, an independent reader's view."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import netCDF4
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from service.formats.ioapi import (
    check_layout,
    decode_tflag,
    encode_tflag,
    looks_like_ioapi,
    read_header,
    read_times,
)
from service.twin.sample import SampleDay


# hypothesis takes naive bounds and attaches the time zone itself.
@given(
    st.datetimes(
        dt.datetime(1990, 1, 1),  # noqa: DTZ001
        dt.datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=st.just(dt.UTC),
    )
)
def test_tflag_round_trip(when: dt.datetime) -> None:
    when = when.replace(microsecond=0)
    assert decode_tflag(*encode_tflag(when)) == when


def test_day_of_year_rolls_over_at_year_end() -> None:
    assert decode_tflag(2024366, 230000) + dt.timedelta(hours=1) == decode_tflag(2025001, 0)
    assert encode_tflag(dt.datetime(2024, 12, 31, 15, tzinfo=dt.UTC)) == (2024366, 150000)


def test_written_header_has_ioapi_names_and_types(sample_day: SampleDay) -> None:
    with netCDF4.Dataset(sample_day.cmaq[0]) as ds:
        assert ds.data_model == "NETCDF3_CLASSIC"
        assert list(ds.dimensions) == ["TSTEP", "DATE-TIME", "LAY", "VAR", "ROW", "COL"]
        assert ds.dimensions["TSTEP"].isunlimited()
        for name in ("SDATE", "STIME", "TSTEP", "NCOLS", "NROWS", "GDTYP", "NVARS"):
            assert np.asarray(ds.getncattr(name)).dtype == np.int32, name
        for name in ("P_ALP", "P_BET", "XORIG", "YORIG", "XCELL"):
            assert np.asarray(ds.getncattr(name)).dtype == np.float64, name
        assert len(ds.getncattr("VAR-LIST")) == 16 * ds.NVARS
        assert len(ds.variables["PM2_5"].units) == 16
        assert ds.variables["TFLAG"].dimensions == ("TSTEP", "VAR", "DATE-TIME")
        assert (ds.SDATE, ds.STIME) == (2024008, 150000)
        assert "SYNTHETIC" in ds.FILEDESC
        header = read_header(ds, sample_day.cmaq[0])
    g = header.grid
    assert (g.ncols, g.nrows, g.xorig, g.yorig) == (67, 82, -180000, -585000)
    assert header.var_list == ("CO", "SO2", "O3", "NO2", "PM10", "PM2_5")


def test_the_written_layout_passes_its_own_checks(sample_day: SampleDay) -> None:
    with netCDF4.Dataset(sample_day.cmaq[0]) as ds:
        header = read_header(ds, sample_day.cmaq[0])
        check_layout(ds, header, sample_day.cmaq[0])
        times = read_times(ds, sample_day.cmaq[0], header)
        assert looks_like_ioapi(ds)
    assert len(times) == 24 and times[0] == dt.datetime(2024, 1, 8, 15, tzinfo=dt.UTC)


def test_a_plain_netcdf_file_does_not_look_like_ioapi(tmp_path: Path) -> None:
    with netCDF4.Dataset(tmp_path / "x.nc", "w") as ds:
        ds.createDimension("x", 1)
        ds.createVariable("v", "f4", ("x",))
        assert not looks_like_ioapi(ds)
        ds.SDATE = np.int32(2024001)
        assert looks_like_ioapi(ds)
