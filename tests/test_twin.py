"""The twin: real formats, determinism, sub-ranges, atomic writes, and the CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import warnings
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from click.testing import CliRunner

from service.cli import main
from service.features import CO, NO2, SO2
from service.forecast.tensor import assemble_inputs, load_truth
from service.settings import GridSpec, Settings
from service.timeaxis import KST
from service.twin.archive import BLOCK_DAYS, Twin, block_start, generate
from service.twin.report import write_report
from service.twin.world import GAS_CEILING_PPM, State, World, winter_index

DAY = dt.date(2021, 1, 9)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# Writing twin days takes seconds each (a simulation block with its spin-up): the tests that
# need an archive are marked slow.
@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("twin")
    generate(GridSpec(), DAY - dt.timedelta(days=1), DAY, out, workers=1, progress=False)
    return out


@pytest.mark.slow
def test_archive_is_an_inbox_the_readers_accept(archive: Path) -> None:
    settings = Settings(inbox=archive)
    inputs = assemble_inputs(DAY, settings)
    truth = load_truth(DAY, settings)
    assert inputs.tensor.shape == (24, 68, 59, 12)
    assert np.isfinite(inputs.tensor).all()
    assert truth.data["pm25"].shape == (24, 68, 59)
    assert {f.kind for f in inputs.files} == {"cmaq", "wrf"}


@pytest.mark.slow
def test_files_are_labelled_synthetic(archive: Path) -> None:
    cmaq = next((archive / "cmaq").rglob("*.nc"))
    wrf = next((archive / "wrf").rglob("wrfout_*"))
    with netCDF4.Dataset(cmaq) as ds:
        assert "SYNTHETIC" in ds.FILEDESC and ds.NCOLS == 67 and ds.NROWS == 82
    with netCDF4.Dataset(wrf) as ds:
        assert "SYNTHETIC" in ds.TITLE and ds.MAP_PROJ == 1
        assert ds.dimensions["Time"].size == 25
        assert {"SINALPHA", "COSALPHA", "RAINC", "RAINNC", "XLAT", "XLONG"} <= set(ds.variables)


@pytest.mark.slow
def test_wrf_rain_is_accumulated_and_starts_before_midnight_kst(archive: Path) -> None:
    wrf = sorted((archive / "wrf" / f"{DAY:%Y%m%d}").glob("wrfout_*"))[0]
    with netCDF4.Dataset(wrf) as ds:
        times = netCDF4.chartostring(ds.variables["Times"][:])
        rain = ds.variables["RAINC"][:] + ds.variables["RAINNC"][:]
        assert f"{DAY - dt.timedelta(days=1):%Y-%m-%d}_00:00:00" == ds.SIMULATION_START_DATE
    assert str(times[0]) == f"{DAY - dt.timedelta(days=1):%Y-%m-%d}_14:00:00"
    assert (np.diff(rain, axis=0) >= -1e-3).all()


@pytest.mark.slow
def test_same_seed_same_bytes_and_sub_range_equals_full_range(
    archive: Path, tmp_path: Path
) -> None:
    generate(GridSpec(), DAY, DAY, tmp_path, workers=1, progress=False)
    full = {k: v for k, v in _digests(archive).items() if f"{DAY:%Y%m%d}" in k}
    assert _digests(tmp_path) == full and len(full) == 3


def test_report_reads_the_archive_back_and_compares_seoul_with_real_hours(
    archive: Path, tmp_path: Path
) -> None:
    seoul_csv = tmp_path / "seoul.csv"
    first_end = dt.datetime(2021, 1, 8, 1, tzinfo=KST)  # the source stamps the hour's end
    ends = [first_end + dt.timedelta(hours=h) for h in range(48)]
    rows = [f"{t.isoformat()},{'' if h == 5 else 20 + h % 7}" for h, t in enumerate(ends)]
    seoul_csv.write_text("time_kst,pm25_ugm3\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "report"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # months without days are NaN
        path, ok = write_report(archive, out, DAY - dt.timedelta(days=1), DAY, seoul_csv)
    text = path.read_text(encoding="utf-8")
    assert "(2 days)" in text and "rejected" not in text
    assert ok == ("**Every target is met.**" in text)
    assert "| 2021 analysis mean (grid) |" in text
    assert "| mean | " in text and "## What CMAQ gets wrong in the twin" in text
    for png in (
        "seoul_monthly",
        "seoul_histogram",
        "seoul_timeseries",
        "maps",
        "cmaq_rmse_by_hour",
    ):
        assert (out / f"{png}.png").is_file() and f"]({png}.png)" in text


def test_another_seed_gives_another_world(tmp_path: Path) -> None:
    a = World(GridSpec(), seed=1).episodes(2021)
    b = World(GridSpec(), seed=2).episodes(2021)
    assert [e.start for e in a] != [e.start for e in b]


def test_every_year_has_the_strong_january_episode() -> None:
    world = World(GridSpec(), seed=0)
    for year in (2019, 2022):
        strength = world.inflow(dt.datetime(year, 1, 9, 3, tzinfo=dt.UTC))[0]
        assert strength > 150


def test_episodes_differ_in_timing_not_in_strength_between_years() -> None:
    world = World(GridSpec(), seed=0)
    mixes = [
        sorted(round(e.amplitude, 6) for e in world.episodes(y) if not e.dust) for y in (2020, 2021)
    ]
    starts = [sorted(e.start % 8766 for e in world.episodes(y)) for y in (2020, 2021)]
    assert mixes[0] == mixes[1]
    assert starts[0] != starts[1]


def test_gases_level_off_below_the_readers_plausible_range() -> None:
    """However strong the emissions, the forecast's gases stay where real ones are measured."""
    world = World(GridSpec(), seed=0)
    when = dt.datetime(2022, 1, 16, 21, tzinfo=dt.UTC)  # a winter night, no photolysis
    tracers = np.zeros((5, world.ny, world.nx))
    tracers[3] = np.linspace(0.0, 1e5, world.nx)[None, :]  # combustion, absurdly high
    tracers[4] = np.linspace(0.0, 1e5, world.nx)[None, :]  # SO2
    tracers[3, 0] = 10.0  # one row of ordinary urban air
    state = State(tracers, np.full((world.ny, world.nx), 300.0), when)
    gases = world.chemistry(state, world.weather(when))
    for feature in (NO2, CO, SO2):
        top = float(gases[feature.name].max())
        assert top < GAS_CEILING_PPM[feature.name] + 0.2 < feature.high
        assert top > 0.9 * GAS_CEILING_PPM[feature.name]  # saturated, not cut to zero
    # ...and clean air is unchanged by the ceiling: linear at low levels.
    assert np.allclose(gases["no2"][0] - 0.002, 0.0011 * 10.0 * 1.15, rtol=0.01)


def test_seasons_and_blocks() -> None:
    assert winter_index(dt.datetime(2021, 1, 15, tzinfo=dt.UTC)) > 0.99
    assert winter_index(dt.datetime(2021, 7, 15, tzinfo=dt.UTC)) < 0.01
    b = block_start(DAY)
    assert b <= DAY < b + dt.timedelta(days=BLOCK_DAYS)
    assert block_start(b + dt.timedelta(days=BLOCK_DAYS - 1)) == b


def test_analysis_equals_observations_near_stations_and_background_far_away() -> None:
    twin = Twin(GridSpec())
    background = np.full((1, 68, 59), 10.0)
    truth = np.full((1, 68, 59), 30.0)
    out = twin.analysis(DAY, background, truth)
    r, c = twin.station_cells
    assert abs(float(np.median(out[0][r, c])) - 30.0) < 3.0
    assert out[0, 0, 0] == 10.0  # the south-west corner is open sea, far from any station


@pytest.mark.slow
def test_an_interrupted_write_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import service.formats.ioapi as ioapi

    class BoomError(RuntimeError):
        pass

    original = ioapi.encode_tflag
    calls = {"n": 0}

    def failing(when: dt.datetime) -> tuple[int, int]:
        calls["n"] += 1
        if calls["n"] > 3:
            raise BoomError("disk full")
        return original(when)

    monkeypatch.setattr(ioapi, "encode_tflag", failing)
    with pytest.raises(BoomError):
        generate(GridSpec(), DAY, DAY, tmp_path, workers=1, progress=False)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


@pytest.mark.slow
def test_cli_twin_writes_days(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "twin",
            "--start",
            "2021-01-09",
            "--end",
            "2021-01-09",
            "--out",
            str(tmp_path),
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 1 SYNTHETIC days" in result.output
    assert (tmp_path / "cmaq" / "20210109").is_dir()


def test_cli_twin_rejects_a_reversed_range(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["twin", "--start", "2021-01-09", "--end", "2021-01-01", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0 and "before" in result.output


@pytest.mark.slow
def test_cli_twin_report_measures_an_archive(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(
        main,
        ["twin", "report", str(archive), "--out", str(out), "--start", "2021-01-08",
         "--end", "2021-01-09"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # Two days cannot meet targets set for four years: the report says so, and exits 0.
    assert result.output.strip().endswith(f"report written to {out / 'REPORT.md'}: "
                                          "some targets MISSED")  # fmt: skip
    report = (out / "REPORT.md").read_text()
    assert report.startswith("# The twin's calibration report (SYNTHETIC data)")
    assert "target days 2021-01-08 .. 2021-01-09 (2 days)" in report
    assert f"pm25 twin report {archive} --out {out} --start 2021-01-08 --end 2021-01-09" in report
    rows = re.findall(r"^\| (.+?) \| (.+?) \| (.+?) \| (ok|MISSED) \|$", report, re.M)
    assert len(rows) >= 10 and {r[3] for r in rows} == {"ok", "MISSED"}
    assert (out / "maps.png").stat().st_size > 0


def test_cli_twin_report_needs_an_existing_archive(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["twin", "report", str(tmp_path / "none")])
    assert result.exit_code == 2 and "does not exist" in result.output
