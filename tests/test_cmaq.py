"""CMAQ and analysis readers: real I/O API variants, and every kind of bad file."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from service.errors import (
    BadValueError,
    ConflictingInputError,
    DimensionError,
    GridMismatchError,
    ImplausibleValueError,
    InputFileError,
    MissingInputError,
    MissingVariableError,
    NegativeValueError,
    NotNetCDFError,
    PM10BelowPM25Error,
    TimeCoverageError,
    UnitError,
    WrongUnitsError,
)
from service.formats.ioapi import BADVAL3, IoapiVariable, write_ioapi
from service.grid import Grid
from service.ingest import forecast_hours, read_analysis, read_cmaq
from service.settings import GridSpec
from service.twin.domains import ioapi_grid, parent_spec
from service.twin.files import write_cmaq_file
from service.twin.sample import SampleDay, sample_cmaq_fields, write_sample_day

from .conftest import DAY

HOURS = forecast_hours(DAY)
PARENT = parent_spec(GridSpec())


def _fields(spec: GridSpec = PARENT) -> dict[str, np.ndarray]:
    return sample_cmaq_fields(spec, HOURS)


def _write(path: Path, fields: dict | None = None, times: list | None = None, **kw) -> Path:  # type: ignore[type-arg]
    return write_cmaq_file(path, fields or _fields(), times or HOURS, PARENT, **kw)


def test_reads_24_hours_of_the_parent_grid_window(sample_day: SampleDay, grid: Grid) -> None:
    out = read_cmaq(sample_day.cmaq, DAY, grid)
    assert set(out.data.data_vars) == {"co", "so2", "o3", "no2", "pm10", "pm25"}
    assert out.data["pm25"].shape == (24, 68, 59)
    expected = _fields()["pm25"][:, 7:-7, 4:-4]
    np.testing.assert_allclose(out.data["pm25"].values, expected, rtol=1e-6)
    assert str(out.data.time.values[0])[:16] == "2024-01-08T15:00"
    assert out.data["co"].attrs["units"] == "ppm"
    assert len(out.files) == 1 and len(out.files[0].sha256) == 64


def test_combine_style_ppb_gives_the_same_ppm(tmp_path: Path, grid: Grid) -> None:
    aconc = read_cmaq([_write(tmp_path / "a.nc")], DAY, grid).data
    combine = read_cmaq([_write(tmp_path / "c.nc", style="combine")], DAY, grid).data
    for name in ("co", "so2", "o3", "no2", "pm25"):
        np.testing.assert_allclose(combine[name].values, aconc[name].values, rtol=1e-5)


def test_pm25_under_its_plain_name(tmp_path: Path, grid: Grid) -> None:
    f = _fields()
    variables = {
        n: IoapiVariable(f[k], u)
        for n, k, u in (
            ("CO", "co", "ppmV"),
            ("SO2", "so2", "ppmV"),
            ("O3", "o3", "ppmV"),
            ("NO2", "no2", "ppmV"),
            ("PM10", "pm10", "micrograms/m**3"),
            ("PM25", "pm25", "micrograms/m**3"),
        )
    }
    path = write_ioapi(tmp_path / "p.nc", variables, HOURS, ioapi_grid(PARENT))
    out = read_cmaq([path], DAY, grid)
    np.testing.assert_allclose(out.data["pm25"].values, f["pm25"][:, 7:-7, 4:-4], rtol=1e-6)


def test_two_utc_day_files_are_joined(tmp_path: Path, grid: Grid) -> None:
    split = write_sample_day(tmp_path, DAY, GridSpec(), split_cmaq=True)
    whole = write_sample_day(tmp_path / "w", DAY, GridSpec())
    assert len(split.cmaq) == 2
    a = read_cmaq(split.cmaq, DAY, grid).data
    b = read_cmaq(whole.cmaq, DAY, grid).data
    np.testing.assert_array_equal(a["pm25"].values, b["pm25"].values)


def test_a_file_on_the_service_grid_itself_is_read(tmp_path: Path, grid: Grid) -> None:
    f = _fields(GridSpec())
    path = write_cmaq_file(tmp_path / "s.nc", f, HOURS, GridSpec())
    out = read_cmaq([path], DAY, grid)
    np.testing.assert_allclose(out.data["no2"].values, f["no2"], rtol=1e-6)


def test_a_longer_file_gives_just_the_24_hours(tmp_path: Path, grid: Grid) -> None:
    times = (
        [HOURS[0] - dt.timedelta(hours=3 - k) for k in range(3)]
        + HOURS
        + [HOURS[-1] + dt.timedelta(hours=1)]
    )
    f = {k: np.concatenate([v[:3], v, v[-1:]]) for k, v in _fields().items()}
    out = read_cmaq([_write(tmp_path / "long.nc", f, times)], DAY, grid)
    assert out.data["pm25"].shape[0] == 24
    np.testing.assert_allclose(out.data["pm25"].values, _fields()["pm25"][:, 7:-7, 4:-4], rtol=1e-6)


def test_analysis_reader(sample_day: SampleDay, grid: Grid) -> None:
    out = read_analysis(sample_day.analysis, DAY, grid)
    assert list(out.data.data_vars) == ["pm25"] and out.data["pm25"].shape == (24, 68, 59)
    assert out.files[0].kind == "analysis"


# --- bad input ------------------------------------------------------------------------------


def test_not_netcdf(tmp_path: Path, grid: Grid) -> None:
    path = tmp_path / "notes.nc"
    path.write_text("this is not a netCDF file\n")
    with pytest.raises(NotNetCDFError, match="notes.nc: not a netCDF file"):
        read_cmaq([path], DAY, grid)


def test_empty_file(tmp_path: Path, grid: Grid) -> None:
    path = tmp_path / "empty.nc"
    path.touch()
    with pytest.raises(NotNetCDFError, match=r"empty.nc: file is empty"):
        read_cmaq([path], DAY, grid)


@pytest.mark.parametrize("keep", [0.5, 0.999, 0.01])
def test_truncated_file(tmp_path: Path, grid: Grid, keep: float) -> None:
    path = _write(tmp_path / "cut.nc")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(NotNetCDFError, match=r"cut.nc: .*(truncated|cannot be opened)"):
        read_cmaq([path], DAY, grid)


@pytest.mark.parametrize("cut", [1, 4, 3000])
def test_a_file_short_by_a_few_bytes_is_truncated(tmp_path: Path, grid: Grid, cut: int) -> None:
    """A cut smaller than the header is still found: the size counts the header too."""
    path = _write(tmp_path / "cut.nc")
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(
        NotNetCDFError, match=rf"cut.nc: file is truncated \({size - cut} of {size} bytes\)"
    ):
        read_cmaq([path], DAY, grid)


def test_missing_file(tmp_path: Path, grid: Grid) -> None:
    with pytest.raises(MissingInputError, match="gone.nc: file does not exist"):
        read_cmaq([tmp_path / "gone.nc"], DAY, grid)


def test_missing_variable(tmp_path: Path, grid: Grid) -> None:
    f = _fields()
    del f["so2"]
    path = _write(tmp_path / "noso2.nc", f)
    with pytest.raises(MissingVariableError, match=r"noso2.nc: variable for sulphur dioxide.*SO2"):
        read_cmaq([path], DAY, grid)


def test_missing_ioapi_attribute(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "nohdr.nc")
    with netCDF4.Dataset(path, "a") as ds:
        ds.delncattr("XORIG")
    with pytest.raises(MissingVariableError, match="nohdr.nc: not an I/O API file.*XORIG"):
        read_cmaq([path], DAY, grid)


def test_wrong_projection(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "proj.nc")
    with netCDF4.Dataset(path, "a") as ds:
        ds.P_ALP = np.float64(25.0)
    with pytest.raises(GridMismatchError, match=r"proj.nc: projection differs.*P_ALP=25"):
        read_cmaq([path], DAY, grid)


def test_not_lambert(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "ll.nc")
    with netCDF4.Dataset(path, "a") as ds:
        ds.GDTYP = np.int32(1)
    with pytest.raises(GridMismatchError, match="GDTYP is 1, expected 2"):
        read_cmaq([path], DAY, grid)


def test_grid_that_does_not_align(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "shift.nc")
    with netCDF4.Dataset(path, "a") as ds:
        ds.XORIG = np.float64(-180000 + 4500)
    with pytest.raises(GridMismatchError, match="does not align"):
        read_cmaq([path], DAY, grid)


def test_grid_too_small(tmp_path: Path, grid: Grid) -> None:
    small = GridSpec(ncols=30, nrows=30)
    path = write_cmaq_file(tmp_path / "small.nc", _fields(small), HOURS, small)
    with pytest.raises(GridMismatchError, match="does not contain"):
        read_cmaq([path], DAY, grid)


def test_hours_missing(tmp_path: Path, grid: Grid) -> None:
    f = {k: v[:20] for k, v in _fields().items()}
    path = _write(tmp_path / "short.nc", f, HOURS[:20])
    with pytest.raises(
        TimeCoverageError, match=r"4 of the 24 hours of 2024-01-09 KST are missing: 20 KST"
    ):
        read_cmaq([path], DAY, grid)


def test_hours_duplicated(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "dup.nc")
    with netCDF4.Dataset(path, "a") as ds:
        flags = ds.variables["TFLAG"][:]
        flags[5] = flags[4]
        ds.variables["TFLAG"][:] = flags
    with pytest.raises(
        TimeCoverageError, match=r"dup.nc: hour 2024-01-08 19:00 UTC appears 2 times"
    ):
        read_cmaq([path], DAY, grid)


def test_wrong_dates(tmp_path: Path, grid: Grid) -> None:
    other = [t + dt.timedelta(days=30) for t in HOURS]
    path = _write(tmp_path / "feb.nc", None, other)
    with pytest.raises(
        TimeCoverageError,
        match=r"wrong dates: KST day 2024-01-09 needs 2024-01-08 15:00.*2024-02-07",
    ):
        read_cmaq([path], DAY, grid)


def test_garbage_tflag(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "zero.nc")
    with netCDF4.Dataset(path, "a") as ds:
        ds.variables["TFLAG"][3] = 0
    with pytest.raises(TimeCoverageError, match="TFLAG of step 3 is not a valid date"):
        read_cmaq([path], DAY, grid)


@pytest.mark.parametrize(
    ("bad", "word"), [(np.nan, "NaN"), (BADVAL3, "BADVAL3"), (np.inf, "infinite")]
)
def test_nan_badval_and_infinity_are_named_at_the_files_own_indices(
    tmp_path: Path, grid: Grid, bad: float, word: str
) -> None:
    f = _fields()
    f["o3"][2, 40, 30] = bad
    path = _write(tmp_path / "bad.nc", f)
    with pytest.raises(
        BadValueError,
        match=rf"bad.nc: variable 'O3' has 1 {word}.*TSTEP=2, LAY=0, ROW=40, COL=30 "
        r"\(2024-01-08 17:00 UTC\)",
    ):
        read_cmaq([path], DAY, grid)


def test_negative_concentration(tmp_path: Path, grid: Grid) -> None:
    f = _fields()
    f["no2"][0, 20, 20] = -0.01
    path = _write(tmp_path / "neg.nc", f)
    with pytest.raises(
        NegativeValueError,
        match=r"neg.nc: variable 'NO2' .* negative concentrations: minimum -0.01 ppm at TSTEP=0, "
        r"LAY=0, ROW=20, COL=20",
    ):
        read_cmaq([path], DAY, grid)


def test_value_outside_plausible_range(tmp_path: Path, grid: Grid) -> None:
    f = _fields()
    f["o3"] = f["o3"] * 1000  # ppb written under a ppmV label
    path = _write(tmp_path / "ppb.nc", f)
    with pytest.raises(
        WrongUnitsError,
        match=r"ppb.nc: variable 'O3' .* outside the plausible 0..0.5 .* look like another unit, "
        r"ppb labelled as ppm",
    ):
        read_cmaq([path], DAY, grid)


def test_an_implausible_field_no_unit_explains_is_not_blamed_on_units(
    tmp_path: Path, grid: Grid
) -> None:
    f = _fields()
    f["pm25"][5, 30, 30] = 1e6
    path = _write(tmp_path / "spike.nc", f)
    with pytest.raises(ImplausibleValueError, match=r"PM2_5.*outside the plausible") as info:
        read_cmaq([path], DAY, grid)
    assert not isinstance(info.value, WrongUnitsError)


def test_unknown_units(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "units.nc")
    with netCDF4.Dataset(path, "a") as ds:
        ds.variables["CO"].units = "mol/mol         "
    with pytest.raises(
        UnitError, match=r"units.nc: variable 'CO' has units 'mol/mol'; expected ppmV or ppbV"
    ):
        read_cmaq([path], DAY, grid)


@pytest.mark.parametrize(
    ("factor", "words"),
    [
        (1e-3, "mg/m3 labelled as ug/m3 (1000 times too small)"),
        (1e-2, "about 100 times too small (no common unit mistake"),
    ],
)
def test_pm_a_thousand_or_a_hundred_times_too_small_fails_the_day(
    tmp_path: Path, grid: Grid, factor: float, words: str
) -> None:
    f = _fields()
    f["pm25"] = f["pm25"] * factor
    path = _write(tmp_path / "small.nc", f)
    with pytest.raises(WrongUnitsError) as info:
        read_cmaq([path], DAY, grid)
    assert "small.nc" in str(info.value) and "'PM2_5'" in str(info.value)
    assert words in str(info.value) and "far below any real value (at least 0.2)" in str(info.value)


def test_pm_a_hundred_times_too_large_names_no_unit(tmp_path: Path, grid: Grid) -> None:
    f = _fields()
    f["pm25"] = f["pm25"] * 100
    with pytest.raises(ImplausibleValueError) as info:
        read_cmaq([_write(tmp_path / "large.nc", f)], DAY, grid)
    assert "'PM2_5'" in str(info.value) and "ng/m3" not in str(info.value)


def test_a_clean_day_of_pm_passes(tmp_path: Path, grid: Grid) -> None:
    """A day as clean as the synthetic twin's cleanest (0.7 ug/m3 PM2.5, 1.5 PM10, after a
    summer washout) is good data, hours far cleaner than the day included."""
    f = _fields()
    for name, target in (("pm25", 0.6), ("pm10", 1.2)):
        f[name] = f[name] * np.float32(target / f[name][:, 7:-7, 4:-4].mean())
        f[name][:6] *= np.float32(0.05)  # the first hours averaging a few hundredths
    out = read_cmaq([_write(tmp_path / "clean.nc", f)], DAY, grid)
    assert 0.3 < float(out.data["pm25"].mean()) < 0.7


def _fields_with_pm10_below_pm25_in_four_cells() -> dict[str, np.ndarray]:
    """Good fields but for four cells of hour 3, where PM10 is 5 ug/m3 below PM2.5."""
    f = _fields()
    f["pm10"][3, 30:32, 30:32] = f["pm25"][3, 30:32, 30:32] - 5
    return f


def test_pm10_below_pm25_in_a_few_cells_is_logged_not_a_failure(
    tmp_path: Path, grid: Grid, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path / "pm.nc", _fields_with_pm10_below_pm25_in_four_cells())
    with caplog.at_level("WARNING", logger="service.ingest.common"):
        out = read_cmaq([path], DAY, grid)
    assert out.data["pm10"].shape == (24, 68, 59)
    assert "pm.nc: PM10 is below PM2.5 in 4 of 96,288 cell-hours (0%" in caplog.text
    assert "used as they are" in caplog.text


@pytest.mark.parametrize("how", ["swapped", "pm25-times-3"])
def test_pm10_below_pm25_in_most_cells_fails_the_file(tmp_path: Path, grid: Grid, how: str) -> None:
    f = _fields()
    if how == "swapped":
        f["pm10"], f["pm25"] = f["pm25"], f["pm10"]
    else:
        f["pm25"] = f["pm25"] * 3
    path = _write(tmp_path / "pm.nc", f)
    with pytest.raises(PM10BelowPM25Error) as info:
        read_cmaq([path], DAY, grid)
    message = str(info.value)
    assert message.startswith(f"{path}: PM10 is below PM2.5 in ") and "swapped" in message
    share = int(message.split("cell-hours (")[1].split("%")[0])
    assert share > 50


def test_a_warning_about_the_same_file_is_logged_once_per_run(
    tmp_path: Path, grid: Grid, caplog: pytest.LogCaptureFixture
) -> None:
    """A run reads its files for the grid and again for a model's margin: one warning."""
    from service.ingest.common import warnings_once

    path = _write(tmp_path / "pm.nc", _fields_with_pm10_below_pm25_in_four_cells())
    foreign = tmp_path / "terrain.nc"
    with netCDF4.Dataset(foreign, "w") as ds:
        ds.createDimension("x", 2)
        ds.createVariable("height", "f4", ("x",))[:] = [1.0, 2.0]
    with caplog.at_level("WARNING", logger="service.ingest"), warnings_once():
        read_cmaq([path, foreign], DAY, grid)
        read_cmaq([path, foreign], DAY, grid)
    assert caplog.text.count("PM10 is below PM2.5") == 1
    assert caplog.text.count("terrain.nc: skipped") == 1
    caplog.clear()
    with caplog.at_level("WARNING", logger="service.ingest"):  # outside a run: every time
        read_cmaq([path], DAY, grid)
        read_cmaq([path], DAY, grid)
    assert caplog.text.count("PM10 is below PM2.5") == 2


def test_var_list_naming_a_variable_the_file_lacks_is_refused(tmp_path: Path, grid: Grid) -> None:
    from .badfiles import copy_netcdf

    path = copy_netcdf(_write(tmp_path / "a.nc"), tmp_path / "lying.nc", skip=("SO2",))
    with pytest.raises(MissingVariableError) as info:
        read_cmaq([path], DAY, grid)
    assert str(info.value) == (
        f"{path}: VAR-LIST names SO2 but the file has no such variable "
        "(it has CO, O3, NO2, PM10, PM2_5)"
    )


def test_a_missing_species_lists_the_files_own_variables(tmp_path: Path, grid: Grid) -> None:
    f = {k: v for k, v in _fields().items() if k != "so2"}
    path = _write(tmp_path / "noso2.nc", f)
    with pytest.raises(MissingVariableError) as info:
        read_cmaq([path], DAY, grid)
    assert "looked for SO2; the file has CO, O3, NO2, PM10, PM2_5)" in str(info.value)


def test_every_error_names_the_file(tmp_path: Path, grid: Grid) -> None:
    src = _write(tmp_path / "ok.nc")
    target = tmp_path / "renamed-file.nc"
    shutil.copy(src, target)
    with netCDF4.Dataset(target, "a") as ds:
        ds.XCELL = np.float64(12000)
    with pytest.raises(InputFileError) as info:
        read_cmaq([target], DAY, grid)
    assert info.value.path == str(target) and "cell size 12000" in info.value.problem


# --- several files, strays, reading only what the day needs ---------------------------------


def test_an_identical_copy_of_the_same_hours_is_accepted(tmp_path: Path, grid: Grid) -> None:
    path = _write(tmp_path / "a.nc")
    copy = tmp_path / "b.nc"
    shutil.copy(path, copy)
    both = read_cmaq([path, copy], DAY, grid)
    np.testing.assert_array_equal(both.data["pm25"], read_cmaq([path], DAY, grid).data["pm25"])
    assert len(both.files) == 2


def test_the_same_hours_in_ppbv_and_ppmv_agree(tmp_path: Path, grid: Grid) -> None:
    aconc, combine = _write(tmp_path / "a.nc"), _write(tmp_path / "c.nc", style="combine")
    out = read_cmaq([aconc, combine], DAY, grid)
    assert out.data["o3"].shape == (24, 68, 59)


def test_conflicting_files_name_both(tmp_path: Path, grid: Grid) -> None:
    f = _fields()
    f["pm25"] = f["pm25"] * 2
    a, b = _write(tmp_path / "a.nc"), _write(tmp_path / "b.nc", f)
    with pytest.raises(ConflictingInputError, match=r"a.nc: .* like .*b.nc but with different"):
        read_cmaq([a, b], DAY, grid)


def test_a_foreign_netcdf_file_is_skipped_with_a_warning(
    tmp_path: Path, grid: Grid, caplog: pytest.LogCaptureFixture
) -> None:
    foreign = tmp_path / "terrain.nc"
    with netCDF4.Dataset(foreign, "w") as ds:
        ds.createDimension("x", 2)
        ds.createVariable("height", "f4", ("x",))[:] = [1.0, 2.0]
    with caplog.at_level("WARNING", logger="service.ingest.cmaq"):
        out = read_cmaq([_write(tmp_path / "a.nc"), foreign], DAY, grid)
    assert [f.path for f in out.files] == [str((tmp_path / "a.nc").resolve())]
    assert "terrain.nc: skipped" in caplog.text and "not I/O API output" in caplog.text


def test_hours_the_day_does_not_need_are_not_read(tmp_path: Path, grid: Grid) -> None:
    before = [HOURS[0] - dt.timedelta(hours=6 - k) for k in range(6)]
    f = {k: np.concatenate([v[:6], v]) for k, v in _fields().items()}
    f["pm25"][2, 40, 30] = np.nan  # 6 hours before the day starts
    out = read_cmaq([_write(tmp_path / "long.nc", f, before + HOURS)], DAY, grid)
    assert np.isfinite(out.data["pm25"].values).all()


def test_a_value_outside_the_service_window_is_not_read(tmp_path: Path, grid: Grid) -> None:
    f = _fields()
    f["pm25"][3, 0, 0] = np.nan  # the parent grid's corner, outside the service grid
    out = read_cmaq([_write(tmp_path / "corner.nc", f)], DAY, grid)
    assert np.isfinite(out.data["pm25"].values).all()


def test_a_netcdf4_file_declaring_fifty_million_steps_fails_at_once(
    tmp_path: Path, grid: Grid
) -> None:
    from .badfiles import with_huge_dimension

    path = with_huge_dimension(_write(tmp_path / "a.nc"), tmp_path / "huge.nc", "TSTEP", 50_000_000)
    with pytest.raises(DimensionError, match=r"huge.nc: dimension 'TSTEP' declares 50,000,000"):
        read_cmaq([path], DAY, grid)
