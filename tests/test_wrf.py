"""WRF reader: derived fields as WRF computes them, grid mapping, real files, bad files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from pyproj import CRS

from service.errors import (
    BadValueError,
    ConflictingInputError,
    DomainCoverageError,
    GridMismatchError,
    NotNetCDFError,
    TimeCoverageError,
    WrongUnitsError,
)
from service.grid import Grid
from service.ingest.wrf import (
    WrfRecords,
    derive_weather,
    hourly_precipitation,
    map_to_grid,
    read_wrf,
    read_wrf_records,
    relative_humidity,
    wind_speed_direction,
    wrf_hours,
)
from service.settings import GridSpec
from service.twin.domains import WrfDomain, parent_spec, wrf_domain
from service.twin.files import write_wrf_file
from service.twin.sample import SampleDay, sample_weather, write_sample_day

from .conftest import DAY

TIMES = wrf_hours(DAY)
INIT = TIMES[0] - dt.timedelta(hours=2)


def _write(
    path: Path,
    domain: WrfDomain | None = None,
    times: list | None = None,  # type: ignore[type-arg]
    weather: dict | None = None,
    **kw,
) -> Path:  # type: ignore[type-arg]
    domain = domain or wrf_domain(GridSpec())
    times = times or TIMES
    weather = weather or sample_weather(domain, times, INIT)
    return write_wrf_file(path, domain, times, weather, init_time=INIT, **kw)


def _records(acc: np.ndarray, attrs: dict | None = None, **extra: np.ndarray) -> WrfRecords:  # type: ignore[type-arg]
    n, ny, nx = acc.shape
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    variables = {"RAINC": np.zeros_like(acc), "RAINNC": acc.astype(np.float32), **extra}
    return WrfRecords(
        "mem",
        [t0 + dt.timedelta(hours=k) for k in range(n)],
        attrs or {},
        np.zeros((ny, nx), np.float32),
        np.zeros((ny, nx), np.float32),
        CRS.from_epsg(4326),
        variables,
    )


def test_relative_humidity_matches_wrfs_formula() -> None:
    t2 = np.array([293.15], np.float32)
    psfc = np.array([101325.0], np.float32)
    es = 6.112 * np.exp(17.67 * 20.0 / (293.15 - 29.65))
    qvs = 0.622 * es / (1013.25 - 0.378 * es)
    assert relative_humidity(t2, np.array([qvs / 2], np.float32), psfc)[0] == pytest.approx(
        50.0, abs=1e-3
    )
    assert relative_humidity(t2, np.array([qvs * 2], np.float32), psfc)[0] == 100.0
    assert relative_humidity(t2, np.array([-1e-4], np.float32), psfc)[0] == 0.0


@pytest.mark.parametrize(
    ("u", "v", "direction"),
    [
        (0.0, -5.0, 0.0),
        (-5.0, 0.0, 90.0),
        (0.0, 5.0, 180.0),
        (5.0, 0.0, 270.0),
        (3.0, 3.0, 225.0),
    ],
)
def test_wind_direction_is_where_the_wind_comes_from(u: float, v: float, direction: float) -> None:
    speed, d = wind_speed_direction(np.array([u], np.float32), np.array([v], np.float32))
    assert d[0] == pytest.approx(direction, abs=1e-4) and speed[0] == pytest.approx(np.hypot(u, v))


def test_precipitation_is_clipped_where_accumulation_decreases() -> None:
    acc = np.array([[[0.0, 5.0]], [[1.0, 2.0]], [[3.5, 2.5]]], np.float32)  # 5 -> 2: a reset
    rain = hourly_precipitation(_records(acc))
    np.testing.assert_allclose(rain[:, 0], [[1.0, 0.0], [2.5, 0.5]])


def test_bucket_counters_are_added() -> None:
    acc = np.array([[[99.0]], [[1.0]]], np.float32)  # the bucket tipped at 100 mm
    rec = _records(
        acc,
        {"BUCKET_MM": 100.0},
        I_RAINC=np.zeros((2, 1, 1), np.float32),
        I_RAINNC=np.array([[[0.0]], [[1.0]]], np.float32),
    )
    assert hourly_precipitation(rec)[0, 0, 0] == pytest.approx(2.0)


def test_cone_formula_and_sinalpha_give_the_same_wind(tmp_path: Path, grid: Grid) -> None:
    with_rot = read_wrf([_write(tmp_path / "a", rotation=True)], DAY, grid).data
    without = read_wrf([_write(tmp_path / "b", rotation=False)], DAY, grid).data
    np.testing.assert_allclose(with_rot["wind_speed"], without["wind_speed"], rtol=1e-5)
    diff = (with_rot["wind_direction"] - without["wind_direction"] + 180) % 360 - 180
    assert float(np.abs(diff).max()) < 1e-2


def test_earth_relative_wind_survives_the_grid_rotation(tmp_path: Path, grid: Grid) -> None:
    # The sample blows from the west at 5 m/s at 02 UTC; away from 126E the grid is rotated.
    out = read_wrf([_write(tmp_path / "w")], DAY, grid).data
    k = 11  # 02 UTC = 11 KST, when the sample's v component is zero
    np.testing.assert_allclose(out["wind_direction"].values[k], 270.0, atol=1e-3)
    np.testing.assert_allclose(out["wind_speed"].values[k], 5.0, rtol=1e-5)


def test_aligned_domain_is_cut_exactly(tmp_path: Path, grid: Grid) -> None:
    domain = wrf_domain(GridSpec())
    weather = sample_weather(domain, TIMES, INIT)
    path = _write(tmp_path / "exact", domain, weather=weather)
    records = read_wrf_records([path], TIMES)
    mapping = map_to_grid(records, grid)
    assert mapping.exact
    out = read_wrf([path], DAY, grid).data
    rows, cols = slice(10, 78), slice(7, 66)  # 7 + 3 rows and 4 + 3 columns of margin
    np.testing.assert_allclose(
        out["pressure"].values, weather["pressure"][1:, rows, cols], rtol=1e-6
    )
    np.testing.assert_allclose(
        out["temperature"].values, weather["temperature"][1:, rows, cols], atol=1e-4
    )


def test_unaligned_domain_is_interpolated_bilinearly(tmp_path: Path, grid: Grid) -> None:
    base = parent_spec(GridSpec(), 6, 9)
    domain = WrfDomain(
        base.model_copy(update={"xorig_m": base.xorig_m + 3100.0, "yorig_m": base.yorig_m - 4700.0})
    )
    weather = sample_weather(domain, TIMES, INIT)
    # A pressure field linear in projected x and y is reproduced exactly by bilinear weights.
    xx, yy = np.meshgrid(domain.grid.x_centres, domain.grid.y_centres)
    weather["pressure"] = np.broadcast_to(
        100_000 + 0.001 * xx - 0.002 * yy, weather["pressure"].shape
    )
    path = _write(tmp_path / "shifted", domain, weather=weather)
    assert not map_to_grid(read_wrf_records([path], TIMES[:1]), grid).exact
    out = read_wrf([path], DAY, grid).data
    sx, sy = np.meshgrid(grid.x_centres, grid.y_centres)
    np.testing.assert_allclose(
        out["pressure"].values[0], 100_000 + 0.001 * sx - 0.002 * sy, atol=0.02
    )


def test_domain_that_does_not_cover_the_grid(tmp_path: Path, grid: Grid) -> None:
    small = WrfDomain(GridSpec(ncols=40, nrows=50, name="SMALL"))
    path = _write(tmp_path / "wrfout_small", small)
    with pytest.raises(
        DomainCoverageError, match=r"wrfout_small: the WRF domain .* does not cover"
    ):
        read_wrf([path], DAY, grid)


def test_missing_record_before_midnight_kst(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "wrfout_24", times=TIMES[1:])
    with pytest.raises(
        TimeCoverageError, match=r"1 of the 25 hourly records needed are missing: 2024-01-08 14:00"
    ):
        read_wrf([path], DAY, grid)


def test_wrong_dates(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "wrfout_old", times=[t - dt.timedelta(days=3) for t in TIMES])
    with pytest.raises(TimeCoverageError, match="wrfout_old: wrong dates"):
        read_wrf([path], DAY, grid)


def test_hourly_files_are_joined(tmp_path: Path, grid: Grid) -> None:
    domain = wrf_domain(GridSpec())
    weather = sample_weather(domain, TIMES, INIT)
    paths = [
        write_wrf_file(
            tmp_path / f"wrfout_d01_{t:%Y-%m-%d_%H}",
            domain,
            [t],
            {k: v[i : i + 1] for k, v in weather.items()},
            init_time=INIT,
        )
        for i, t in enumerate(TIMES)
    ]
    joined = read_wrf(paths, DAY, grid).data
    single = read_wrf([_write(tmp_path / "one", domain, weather=weather)], DAY, grid).data
    np.testing.assert_array_equal(joined["precipitation"], single["precipitation"])


def test_wrong_map_projection_attributes(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "wrfout_merc")
    with netCDF4.Dataset(path, "a") as ds:
        ds.MAP_PROJ = np.int32(3)
        ds.TRUELAT1 = np.float32(30.0)
    with pytest.raises(
        GridMismatchError, match=r"wrfout_merc: XLAT/XLONG are not a regular grid in the Mercator"
    ):
        read_wrf([path], DAY, grid)


def test_nan_in_a_wrf_variable(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "wrfout_nan")
    with netCDF4.Dataset(path, "a") as ds:
        ds.variables["Q2"][5, 40, 40] = np.nan
    with pytest.raises(
        BadValueError,
        match=r"wrfout_nan: variable 'Q2' has 1 NaN value\(s\), first at Time=5, "
        r"south_north=40, west_east=40 \(2024-01-08 19:00 UTC\)",
    ):
        read_wrf([path], DAY, grid)


def test_temperature_in_celsius_is_implausible(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "wrfout_c")
    with netCDF4.Dataset(path, "a") as ds:
        ds.variables["T2"][:] = ds.variables["T2"][:] - 273.15
    with pytest.raises(
        WrongUnitsError,
        match=r"wrfout_c: variable 'T2' .*declared 'K'.* outside .* look like another unit, degC "
        r"labelled as K",
    ):
        read_wrf([path], DAY, grid)


def test_truncated_wrfout(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "wrfout_cut")
    path.write_bytes(path.read_bytes()[:-5000])
    with pytest.raises(NotNetCDFError, match="wrfout_cut: file is truncated"):
        read_wrf([path], DAY, grid)


@pytest.mark.parametrize("cut", [1, 3000])
def test_a_wrfout_short_by_a_few_bytes_is_truncated(tmp_path: Path, grid: Grid, cut: int) -> None:
    path = _write(tmp_path / "wrfout_cut")
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(
        NotNetCDFError, match=rf"wrfout_cut: file is truncated \({size - cut} of {size} bytes\)"
    ):
        read_wrf([path], DAY, grid)


def test_not_netcdf_wrfout(tmp_path: Path, grid: Grid) -> None:
    path = tmp_path / "wrfout_d01_text"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(NotNetCDFError, match="not a netCDF file"):
        read_wrf([path], DAY, grid)


def test_sample_day_reads(sample_day: SampleDay, grid: Grid) -> None:
    out = read_wrf(sample_day.wrf, DAY, grid)
    assert set(out.data.data_vars) == {
        "temperature",
        "precipitation",
        "humidity",
        "wind_direction",
        "wind_speed",
        "pressure",
    }
    assert out.data["humidity"].shape == (24, 68, 59)
    assert out.files[0].init_time == INIT  # the sample's run starts 3 h before 00 KST


# --- the real files in ../shared/data ------------------------------------------------------


def test_real_mercator_wrfout_is_derived_then_rejected(shared_data: Path, grid: Grid) -> None:
    path = shared_data / "wrf" / "wrfout_mercator_sample.nc"
    records = read_wrf_records([path])
    assert len(records.times) == 4 and records.times[0] == dt.datetime(
        2005, 8, 28, 12, tzinfo=dt.UTC
    )
    acc = records.variables["RAINC"] + records.variables["RAINNC"]
    assert (np.diff(acc, axis=0) < 0).any(), "the sample's moving nest makes accumulations drop"
    derived = derive_weather(records)
    assert derived["precipitation"].min() == 0.0 and derived["precipitation"].max() > 10
    assert derived["humidity"].min() >= 0 and derived["humidity"].max() <= 100
    speed, _ = wind_speed_direction(derived["u"], derived["v"])
    assert 20 < speed.max() < 80  # hurricane Katrina's 10 m winds
    assert 20 < derived["temperature"].mean() < 35
    with pytest.raises(
        DomainCoverageError, match=r"wrfout_mercator_sample.nc: the WRF domain \(Mercator"
    ):
        read_wrf([path], DAY, grid)


def test_our_wrfout_uses_the_names_and_types_of_a_real_lambert_file(
    shared_data: Path, sample_day: SampleDay
) -> None:
    with (
        netCDF4.Dataset(shared_data / "wrf" / "wrfout_lambert_attrs_only.nc") as real,
        netCDF4.Dataset(sample_day.wrf[0]) as ours,
    ):
        common = set(real.ncattrs()) & set(ours.ncattrs())
        assert {
            "MAP_PROJ",
            "TRUELAT1",
            "TRUELAT2",
            "STAND_LON",
            "MOAD_CEN_LAT",
            "CEN_LAT",
            "DX",
            "SIMULATION_START_DATE",
            "BUCKET_MM",
        } <= common
        for name in common:
            assert type(real.getncattr(name)) is type(ours.getncattr(name)) or (
                np.asarray(real.getncattr(name)).dtype == np.asarray(ours.getncattr(name)).dtype
            ), name
        for var in (
            "XLAT",
            "XLONG",
            "T2",
            "PSFC",
            "U10",
            "V10",
            "RAINC",
            "RAINNC",
            "SINALPHA",
            "COSALPHA",
        ):
            r, o = real.variables[var], ours.variables[var]
            assert r.dtype == o.dtype, var
            for attr in ("FieldType", "MemoryOrder", "description", "units", "stagger"):
                assert r.getncattr(attr) == o.getncattr(attr), (var, attr)
        assert ours.variables["Times"].dimensions == ("Time", "DateStrLen")


def test_a_sample_day_inbox_with_unrotated_winds_still_reads(tmp_path: Path, grid: Grid) -> None:
    day = write_sample_day(tmp_path, DAY, GridSpec(), wrf_rotation=False)
    out = read_wrf(day.wrf, DAY, grid)
    assert float(out.data["wind_speed"].min()) > 0


def test_an_unreadable_start_date_is_a_clear_error(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "wrfout_start")
    with netCDF4.Dataset(path, "a") as ds:
        ds.SIMULATION_START_DATE = "yesterday"
    with pytest.raises(TimeCoverageError, match=r"wrfout_start: SIMULATION_START_DATE 'yesterday'"):
        read_wrf([path], DAY, grid)


# --- units, duplicates, what is read ---------------------------------------------------------


def test_declared_units_other_than_wrfs_own_are_converted(tmp_path: Path, grid: Grid) -> None:
    plain = _write(tmp_path / "wrfout_si")
    other = _write(tmp_path / "wrfout_other")
    with netCDF4.Dataset(other, "a") as ds:
        for name, factor, offset, units in (
            ("T2", 1.0, -273.15, "degC"),
            ("PSFC", 0.01, 0.0, "hPa"),
            ("Q2", 1000.0, 0.0, "g kg-1"),
            ("RAINNC", 0.1, 0.0, "cm"),
        ):
            var = ds.variables[name]
            var[:] = var[:] * factor + offset
            var.units = units
    a, b = read_wrf([plain], DAY, grid).data, read_wrf([other], DAY, grid).data
    for name in ("temperature", "pressure", "humidity", "precipitation"):
        np.testing.assert_allclose(b[name].values, a[name].values, rtol=1e-4, atol=1e-3)


def test_an_identical_copy_of_a_wrfout_is_accepted(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "wrfout_a")
    copy = tmp_path / "wrfout_b"
    copy.write_bytes(path.read_bytes())
    both = read_wrf([path, copy], DAY, grid)
    np.testing.assert_array_equal(
        both.data["pressure"], read_wrf([path], DAY, grid).data["pressure"]
    )
    assert len(both.files) == 2


def test_two_wrfouts_of_one_time_with_different_t2_name_both(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "wrfout_a")
    other = _write(tmp_path / "wrfout_b")
    with netCDF4.Dataset(other, "a") as ds:
        ds.variables["T2"][:] = ds.variables["T2"][:] + 1.0
    with pytest.raises(ConflictingInputError, match=r"wrfout_a: .* like .*wrfout_b but with diff"):
        read_wrf([path, other], DAY, grid)


def test_only_the_service_grids_surroundings_are_read(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "wrfout_corner")
    with netCDF4.Dataset(path, "a") as ds:
        ds.variables["T2"][5, 0, 0] = np.nan  # the domain's corner: no service cell near
    assert np.isfinite(read_wrf([path], DAY, grid).data["temperature"].values).all()


def test_a_dry_day_is_plausible(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "wrfout_dry")
    with netCDF4.Dataset(path, "a") as ds:
        for name in ("RAINC", "RAINNC"):
            ds.variables[name][:] = 0.0
    out = read_wrf([path], DAY, grid).data
    assert float(out["precipitation"].max()) == 0.0
