"""Verification: the scores against an independent numpy computation, storage, re-verification."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.forecast.tensor import assemble_inputs
from service.grid import Grid
from service.settings import GridSpec, Settings
from service.stations import load_stations
from service.storage import repository as repo
from service.storage import verification as vrepo
from service.storage.db import make_engine, session_factory, transaction
from service.storage.migrate import upgrade
from service.timeaxis import forecast_hours
from service.twin.domains import PARENT_COL_MARGIN, PARENT_ROW_MARGIN
from service.twin.files import write_analysis_file
from service.twin.sample import write_sample_day
from service.verification.job import NotVerifiableError, Verifier, verify_due
from service.verification.scores import aggregate, grade_index, score_source

DAY = dt.date(2024, 1, 9)
SPEC = GridSpec()


def designed_analysis(seed: int) -> np.ndarray:
    """An analysis that spans every grade and has peak hours (>= 75 ug/m3)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.meshgrid(np.arange(SPEC.nrows), np.arange(SPEC.ncols), indexing="ij")
    base = 5 + 110 * (rows / SPEC.nrows) * (cols / SPEC.ncols)
    hours = 1 + 0.3 * np.sin(np.arange(24) * np.pi / 12)[:, None, None]
    return np.clip(base * hours + rng.normal(0, 4, (24, *base.shape)), 0, None).astype(np.float32)


def write_analysis(inbox: Path, date: dt.date, values: np.ndarray) -> Path:
    path = inbox / "analysis" / f"{date:%Y%m%d}" / f"PM25_ANALYSIS_{date:%Y%m%d}.nc"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_analysis_file(path, values, forecast_hours(date), SPEC)


def publish(
    sessions: sessionmaker[Session], date: dt.date, field: np.ndarray, files: list[dict]
) -> int:
    with transaction(sessions) as s:
        run = repo.new_run(s, date, "test")
        run.inputs = {"files": files}
        run.status = repo.RunStatus.SUCCEEDED
        repo.publish(s, run, np.asarray(field, np.float32))
        return run.id


class World:
    def __init__(self, root: Path, url: str | None = None) -> None:
        self.inbox = root / "inbox"
        self.sample = write_sample_day(self.inbox, DAY, SPEC)
        self.truth = designed_analysis(1)
        write_analysis(self.inbox, DAY, self.truth)
        write_analysis(self.inbox, DAY - dt.timedelta(days=1), designed_analysis(2))
        self.url = url or f"sqlite:///{root}/v.sqlite"
        if url is None:
            upgrade(self.url)
        self.settings = Settings(inbox=self.inbox, database_url=self.url, input_settle_seconds=0)
        self.engine = make_engine(self.url)
        self.sessions = session_factory(self.engine)
        inputs = assemble_inputs(DAY, self.settings)
        self.files = [f.as_dict() for f in inputs.files]
        rng = np.random.default_rng(3)
        self.model = np.clip(self.truth * 0.85 + rng.normal(0, 6, self.truth.shape) + 2, 0, None)
        self.run_id = publish(self.sessions, DAY, self.model, self.files)


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    yield w
    w.engine.dispose()


def _read_var(path: Path) -> np.ndarray:
    with netCDF4.Dataset(path) as ds:
        return np.asarray(ds.variables["PM2_5"][:, 0], np.float64)


def _independent(f: np.ndarray, a: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> dict:
    """The issue's scores, written out again with plain numpy."""
    e = f - a
    out = {
        "rmse_by_hour": [np.sqrt(np.mean(e[h] ** 2)) for h in range(24)],
        "rmse": np.sqrt(np.mean(e**2)),
        "bias": np.mean(e),
        "mae": np.mean(np.abs(e)),
        "r": np.corrcoef(f.ravel(), a.ravel())[0, 1],
        "station_rmse": np.sqrt(np.mean((f[:, rows, cols] - a[:, rows, cols]) ** 2)),
        "station_bias": np.mean(f[:, rows, cols] - a[:, rows, cols]),
        "station_r": np.corrcoef(f[:, rows, cols].ravel(), a[:, rows, cols].ravel())[0, 1],
    }

    def grades(x: np.ndarray) -> np.ndarray:
        m = np.round(x.mean(axis=0))
        return (m >= 16).astype(int) + (m >= 36) + (m >= 76)

    gf, ga = grades(f), grades(a)
    out["accuracy"] = np.mean(gf == ga)
    for name, k in (("bad_or_worse", 2), ("very_bad", 3)):
        yes_f, yes_a = gf >= k, ga >= k
        hits = np.sum(yes_f & yes_a)
        misses = np.sum(~yes_f & yes_a)
        fa = np.sum(yes_f & ~yes_a)
        with np.errstate(invalid="ignore"):  # 0 / 0: undefined, stored as None
            out[f"{name}_pod"] = hits / (hits + misses)
            out[f"{name}_far"] = fa / (hits + fa)
            out[f"{name}_csi"] = hits / (hits + misses + fa)
    peak = a >= 75
    out["peak_rmse"] = np.sqrt(np.mean(e[peak] ** 2))
    out["mse"] = np.mean(e**2)
    return out


def _stored(s: dict) -> dict:
    g = s["grades"]
    out = {
        "rmse_by_hour": s["cells"]["rmse_by_hour"],
        "rmse": s["cells"]["rmse"],
        "bias": s["cells"]["bias"],
        "mae": s["cells"]["mae"],
        "r": s["cells"]["r"],
        "station_rmse": s["stations"]["rmse"],
        "station_bias": s["stations"]["bias"],
        "station_r": s["stations"]["r"],
        "accuracy": g["accuracy"],
        "peak_rmse": s["peak"]["rmse"],
        "mse": np.mean(np.square(s["cells"]["rmse_by_hour"])),
    }
    for name in ("bad_or_worse", "very_bad"):
        for k in ("pod", "far", "csi"):
            out[f"{name}_{k}"] = np.nan if g[name][k] is None else g[name][k]
    return out


def test_scores_match_an_independent_numpy_computation_for_all_three_sources(
    world: World, grid: Grid
) -> None:
    Verifier(world.settings, world.sessions).verify(DAY)
    with world.sessions() as s:
        rows = vrepo.scores_of_date(s, DAY)
        stored_field = np.asarray(repo.run_field(s, world.run_id), np.float64)
    assert set(rows) == {"model", "cmaq", "persistence"}
    assert {r.run_id for r in rows.values()} == {world.run_id}
    # Independently: the stored field, the files read with netCDF4, stations placed again.
    tag = f"{DAY:%Y%m%d}"
    truth = _read_var(world.inbox / "analysis" / tag / f"PM25_ANALYSIS_{tag}.nc")
    prev_tag = f"{DAY - dt.timedelta(days=1):%Y%m%d}"
    previous = _read_var(world.inbox / "analysis" / prev_tag / f"PM25_ANALYSIS_{prev_tag}.nc")
    cmaq = _read_var(world.sample.cmaq[0])[
        :, PARENT_ROW_MARGIN:-PARENT_ROW_MARGIN, PARENT_COL_MARGIN:-PARENT_COL_MARGIN
    ]
    cells = [grid.cell_of(st.lat, st.lon) for st in load_stations()]
    rows_, cols_ = (np.array([c[i] for c in cells if c is not None]) for i in (0, 1))
    expected = {
        name: _independent(field, truth, rows_, cols_)
        for name, field in (("model", stored_field), ("cmaq", cmaq), ("persistence", previous))
    }
    assert expected["model"]["very_bad_pod"] > 0  # the designed day has every kind of event
    for name, want in expected.items():
        got = _stored(rows[name].scores)
        for key, value in want.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-6, err_msg=f"{name} {key}")
    skill = rows["model"].scores["skill"]
    np.testing.assert_allclose(
        skill["vs_cmaq"], 1 - expected["model"]["mse"] / expected["cmaq"]["mse"], rtol=1e-6
    )
    np.testing.assert_allclose(
        skill["vs_persistence"],
        1 - expected["model"]["mse"] / expected["persistence"]["mse"],
        rtol=1e-6,
    )
    np.testing.assert_allclose(rows["model"].skill_vs_cmaq, skill["vs_cmaq"], rtol=1e-12)
    np.testing.assert_allclose(rows["cmaq"].rmse, expected["cmaq"]["rmse"], rtol=1e-6)


def test_verifying_one_day_takes_at_most_two_seconds(world: World) -> None:
    verifier = Verifier(world.settings, world.sessions)
    t0 = time.perf_counter()
    verifier.verify(DAY)
    assert time.perf_counter() - t0 < 2.0


def test_reverifying_replaces_and_a_republished_forecast_is_verified_again(world: World) -> None:
    verifier = Verifier(world.settings, world.sessions)
    with world.sessions() as s:
        assert vrepo.dates_to_verify(s, DAY) == [DAY]
    assert [v.date for v in verify_due(verifier, DAY)] == [DAY]
    verifier.verify(DAY)  # again: still one row per source
    with world.sessions() as s:
        assert vrepo.dates_to_verify(s, DAY) == []
        assert len(vrepo.scores_between(s, DAY, DAY)) == 3
    second = publish(world.sessions, DAY, world.truth, world.files)  # a perfect re-run
    with world.sessions() as s:
        assert vrepo.dates_to_verify(s, DAY) == [DAY]
    verify_due(verifier, DAY)
    with world.sessions() as s:
        rows = vrepo.scores_of_date(s, DAY)
    assert len(rows) == 3 and rows["model"].run_id == second
    assert rows["model"].rmse == pytest.approx(0.0, abs=1e-6)
    assert rows["model"].skill_vs_cmaq == pytest.approx(1.0)


def test_dates_without_a_forecast_or_an_analysis_are_not_verifiable(world: World) -> None:
    verifier = Verifier(world.settings, world.sessions)
    with pytest.raises(NotVerifiableError) as no_forecast:
        verifier.verify(DAY + dt.timedelta(days=1))
    assert no_forecast.value.reason == "no_forecast"
    later = DAY + dt.timedelta(days=2)
    publish(world.sessions, later, world.model, world.files)
    with pytest.raises(NotVerifiableError) as no_analysis:
        verifier.verify(later)
    assert no_analysis.value.reason == "no_analysis"
    assert [v.date for v in verify_due(verifier, later)] == [DAY]  # the later one waits


def test_missing_previous_analysis_or_changed_cmaq_leave_that_source_out(world: World) -> None:
    prev = DAY - dt.timedelta(days=1)
    for p in (world.inbox / "analysis" / f"{prev:%Y%m%d}").iterdir():
        p.unlink()
    world.sample.cmaq[0].write_bytes(world.sample.cmaq[0].read_bytes() + b"\0")
    result = Verifier(world.settings, world.sessions).verify(DAY)
    assert set(result.scores) == {"model"}
    assert any("persistence not scored" in n for n in result.notes)
    assert any("changed since the run read it" in n for n in result.notes)
    assert result.scores["model"]["skill"] == {"vs_cmaq": None, "vs_persistence": None}


def test_a_period_pools_squared_errors_and_adds_up_the_grade_tables() -> None:
    truth = np.full((24, 3, 3), 40.0)
    days = [score_source(truth + 2, truth), score_source(truth + 4, truth)]
    period = aggregate(days)
    assert period["cells"]["rmse"] == pytest.approx(np.sqrt((4 + 16) / 2))
    assert period["cells"]["spatial_rmse_by_hour"][0] == pytest.approx(3.0)
    assert period["cells"]["bias"] == pytest.approx(3.0)
    assert np.sum(period["grades"]["table"]) == 18
    assert period["grades"]["bad_or_worse"]["pod"] == 1.0
    assert period["peak"]["rmse"] is None


def test_grades_follow_the_korean_standard_of_the_rounded_daily_mean() -> None:
    assert grade_index([0, 15, 15.49, 15.5, 35.5, 75.49, 75.5, 500]).tolist() == [
        0, 0, 0, 1, 2, 2, 3, 3,
    ]  # fmt: skip


def test_scores_are_stored_the_same_way_on_both_databases(db_url: str, tmp_path: Path) -> None:
    w = World(tmp_path, db_url)
    try:
        Verifier(w.settings, w.sessions).verify(DAY)
        Verifier(w.settings, w.sessions).verify(DAY)
        with w.sessions() as s:
            rows = vrepo.scores_of_date(s, DAY)
            assert vrepo.latest_verified_date(s) == DAY
        assert set(rows) == {"model", "cmaq", "persistence"}
        assert rows["model"].scores["cells"]["rmse_by_hour"][0] > 0
    finally:
        w.engine.dispose()


def test_the_demo_lists_only_the_days_that_have_passed(world: World) -> None:
    from service.verification.job import verify_past_days

    assert verify_past_days(world.settings, world.sessions, [DAY], DAY) == []
    (line,) = verify_past_days(world.settings, world.sessions, [DAY], DAY + dt.timedelta(days=1))
    assert line.startswith(f"{DAY}: RMSE model") and "skill against CMAQ" in line
