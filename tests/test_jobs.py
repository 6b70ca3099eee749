"""The daily pipeline on a real database (SQLite, and PostgreSQL in CI) with a real model."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from service.forecast.check import ForecastValidationError, validate_forecast
from service.forecast.model import load_forecaster
from service.jobs import run_daily_forecast
from service.settings import GridSpec
from service.storage import repository as repo
from service.storage.tables import Run, RunField, RunStatus

from .conftest import DAY


def test_a_run_publishes_a_forecast_with_its_metadata(env) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, _ = env
    out = run_daily_forecast(DAY, settings=settings, sessions=sessions)
    assert out.status == RunStatus.SUCCEEDED and not out.fallback
    with sessions() as s:
        run = repo.published_run(s, DAY)
        assert run is not None and run.id == out.run_id
        assert set(run.timings) >= {
            "find_inputs",
            "ingest",
            "load_model",
            "predict",
            "validate",
            "store",
        }
        kinds = [f["kind"] for f in run.inputs["files"]]
        assert kinds == ["cmaq", "wrf"] and all(len(f["sha256"]) == 64 for f in run.inputs["files"])
        assert run.cmaq_init == dt.datetime(2024, 1, 8, 15, tzinfo=dt.UTC)
        assert run.wrf_init is not None and run.wrf_init.tzinfo is not None
        assert run.model is not None and run.model.case == 3 and len(run.model.sha256) == 64
        assert run.stats["min"] >= 0 and len(run.stats["hourly_mean"]) == 24
        field = repo.run_field(s, run.id)
    assert field is not None and field.shape == (24, 68, 59) and field.dtype == np.float32


def test_a_rerun_replaces_the_forecast_and_keeps_the_history(env) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, _ = env
    first = run_daily_forecast(DAY, settings=settings, sessions=sessions)
    second = run_daily_forecast(DAY, settings=settings, sessions=sessions)
    with sessions() as s:
        runs = repo.runs_for_date(s, DAY)
        assert [r.attempt for r in runs] == [1, 2]
        assert repo.published_run(s, DAY).id == second.run_id  # type: ignore[union-attr]
        assert s.get(RunField, first.run_id) is None  # no duplicate data for the date
        assert s.query(RunField).count() == 1


def test_a_failed_rerun_leaves_the_good_forecast_published(env) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, inbox = env
    good = run_daily_forecast(DAY, settings=settings, sessions=sessions)
    cmaq = next((inbox / "cmaq" / "20240109").iterdir())
    cmaq.write_bytes(cmaq.read_bytes()[:5000])
    bad = run_daily_forecast(
        DAY, settings=settings.model_copy(update={"cmaq_fallback": False}), sessions=sessions
    )
    assert (
        bad.status == RunStatus.FAILED and "truncated" in bad.message and cmaq.name in bad.message
    )
    with sessions() as s:
        assert repo.published_run(s, DAY).id == good.run_id  # type: ignore[union-attr]
        failed = s.get(Run, bad.run_id)
        assert failed.stage == "ingest" and "truncated" in failed.error  # type: ignore[union-attr]


def test_missing_inputs_wait_then_succeed_on_the_same_attempt(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, inbox = env
    held = tmp_path / "held"
    shutil.move(inbox / "wrf", held)
    waiting = run_daily_forecast(DAY, settings=settings, sessions=sessions)
    assert waiting.status == RunStatus.WAITING and "no file matches" in waiting.message
    shutil.move(held, inbox / "wrf")
    done = run_daily_forecast(DAY, settings=settings, sessions=sessions)
    assert done.status == RunStatus.SUCCEEDED and done.run_id == waiting.run_id


def test_a_file_still_being_written_makes_the_run_wait(env) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, inbox = env
    cmaq = next((inbox / "cmaq" / "20240109").iterdir())
    os.utime(cmaq)  # just modified
    out = run_daily_forecast(
        DAY, settings=settings.model_copy(update={"input_settle_seconds": 3600}), sessions=sessions
    )
    assert out.status == RunStatus.WAITING and "still settling" in out.message


def test_cmaq_fallback_when_the_model_cannot_run(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, _ = env
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.keras").write_bytes(b"not a model")
    out = run_daily_forecast(
        DAY,
        settings=settings.model_copy(update={"model_path": broken / "model.keras"}),
        sessions=sessions,
    )
    assert out.status == RunStatus.SUCCEEDED and out.fallback
    with sessions() as s:
        run = repo.published_run(s, DAY)
        assert run is not None and run.fallback and run.model_id is None
        assert "model failed at load_model" in (run.error or "")
        field = repo.run_field(s, run.id)
    from service.forecast.tensor import assemble_inputs

    np.testing.assert_array_equal(field, assemble_inputs(DAY, settings).cmaq_pm25)


def test_without_fallback_a_model_failure_fails_the_run(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, _ = env
    out = run_daily_forecast(
        DAY,
        settings=settings.model_copy(
            update={"model_path": tmp_path / "absent.keras", "cmaq_fallback": False}
        ),
        sessions=sessions,
    )
    assert out.status == RunStatus.FAILED and "model file not found" in out.message
    with sessions() as s:
        assert repo.published_run(s, DAY) is None


def test_output_validation_rejects_bad_fields() -> None:
    from service.grid import Grid

    grid = Grid(GridSpec())
    good = np.full((24, 68, 59), 10.0, np.float32)
    assert validate_forecast(good, grid)["mean"] == pytest.approx(10.0)
    for bad, message in (
        (good[:23], "shape"),
        (np.where(good > 0, np.nan, good), "NaN"),
        (good - 20, "outside"),
    ):
        with pytest.raises(ForecastValidationError, match=message):
            validate_forecast(bad, grid)


def test_the_model_is_loaded_once_per_process(tiny_model: Path) -> None:
    a = load_forecaster(str(tiny_model), GridSpec())
    b = load_forecaster(str(tiny_model), GridSpec())
    assert a is b


def test_aware_datetimes_are_required(env) -> None:  # type: ignore[no-untyped-def]
    _, sessions, _ = env
    from service.storage.db import transaction

    with pytest.raises(Exception, match="naive datetime"), transaction(sessions) as s:
        s.add(
            Run(
                target_date=DAY,
                attempt=9,
                status=RunStatus.PENDING,
                trigger="t",
                created_at=dt.datetime(2024, 1, 1),  # noqa: DTZ001
                timings={},
                inputs={},
                stats={},
            )
        )
        s.flush()
