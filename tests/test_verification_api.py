"""Verification over HTTP and in the scheduler: scores of a date, the series, drift, gauges."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.scheduler import Scheduler
from service.settings import Settings
from service.storage.db import transaction
from service.storage.tables import ModelRecord, Run
from service.verification.job import Verifier
from tests.test_verification import DAY, World, publish

TOKEN = "verification-Admin-token-0123456789-abc"


def _client(world: World) -> TestClient:
    settings = Settings(
        inbox=world.inbox, database_url=world.url, input_settle_seconds=0, admin_token=TOKEN
    )
    return TestClient(create_app(settings))


def test_a_verified_date_serves_every_score_for_the_three_sources(tmp_path: Path) -> None:
    world = World(tmp_path)
    Verifier(world.settings, world.sessions).verify(DAY)
    with _client(world) as client:
        body = client.get(f"/v1/verification/{DAY}").json()
        series = client.get("/v1/verification", params={"from": str(DAY), "to": str(DAY)}).json()
        status = client.get("/v1/status").json()
        metrics = client.get("/metrics").text
    assert body["run"]["run_id"] == world.run_id and body["current"] is True
    assert body["hours"][0] == "2024-01-09T00:00:00+09:00"
    assert body["computed_at"].endswith("+09:00")
    for source in ("model", "cmaq", "persistence"):
        s = body[source]
        assert len(s["cells"]["rmse_by_hour"]) == 24
        assert s["stations"]["n"] > 0 and len(s["grades"]["table"]) == 4
        assert set(s["grades"]["very_bad"]) >= {"pod", "far", "csi"}
        assert s["peak"]["threshold"] == 75
    assert body["skill"]["vs_cmaq"] is not None
    assert [d["date"] for d in series["days"]] == [str(DAY)]
    assert series["last_7_days"]["days"] == 1
    assert series["synthetic"] is False  # the run has no model record: nothing synthetic
    worse = series["days"][0]["model_rmse"] > series["days"][0]["cmaq_rmse"]
    assert (series["days_worse_than_cmaq"] == [str(DAY)]) == worse
    drift = status["model_drift"]
    assert drift["worse_than_cmaq"] == worse and drift["days"] == 1
    assert 'pm25_verification_rmse{source="cmaq"}' in metrics
    assert "pm25_verification_skill_vs_cmaq_30d" in metrics
    world.engine.dispose()


def test_dates_without_a_forecast_or_an_analysis_are_problem_documents(tmp_path: Path) -> None:
    world = World(tmp_path)
    with _client(world) as client:
        none = client.get("/v1/verification/2024-02-01")
        waiting = client.get(f"/v1/verification/{DAY}")
        empty = client.get("/v1/verification")
    assert none.status_code == 404 and none.json()["reason"] == "no_forecast"
    assert none.headers["content-type"] == "application/problem+json"
    assert waiting.status_code == 404 and waiting.json()["title"] == "No analysis"
    assert empty.status_code == 404
    world.engine.dispose()


def test_a_drifted_model_is_flagged_in_the_status(tmp_path: Path) -> None:
    world = World(tmp_path)
    publish(world.sessions, DAY, world.truth + 80.0, world.files)  # far worse than CMAQ
    Verifier(world.settings, world.sessions).verify(DAY)
    with _client(world) as client:
        drift = client.get("/v1/status").json()["model_drift"]
        metrics = client.get("/metrics").text
    assert drift["worse_than_cmaq"] is True and "drifted" in drift["message"]
    assert "pm25_verification_model_worse_than_cmaq_14d 1.0" in metrics
    world.engine.dispose()


def test_the_scheduler_verifies_past_dates_once_their_analysis_is_in(tmp_path: Path) -> None:
    world = World(tmp_path)
    scheduler = Scheduler(world.settings, world.sessions)
    scheduler.leader = True
    on_the_day = dt.datetime(2024, 1, 9, 12, tzinfo=dt.UTC)
    assert scheduler.verify_analyses(on_the_day) == []  # the day has not passed yet
    after = dt.datetime(2024, 1, 10, 12, tzinfo=dt.UTC)
    assert scheduler.verify_analyses(after) == [f"{DAY}: verified (run {world.run_id})"]
    assert scheduler.verify_analyses(after) == []  # done once
    second = publish(world.sessions, DAY, np.asarray(world.truth), world.files)
    assert scheduler.verify_analyses(after) == [f"{DAY}: verified (run {second})"]
    world.engine.dispose()


def test_pm25_verify_scores_a_date_and_writes_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from service.cli import main
    from service.settings import get_settings

    world = World(tmp_path)
    monkeypatch.setenv("PM25_INBOX", str(world.inbox))
    monkeypatch.setenv("PM25_DATABASE_URL", world.url)
    get_settings.cache_clear()
    try:
        one = CliRunner().invoke(main, ["verify", "--date", str(DAY)])
        missing = CliRunner().invoke(main, ["verify", "--date", "2024-02-01"])
        out = tmp_path / "report"
        report = CliRunner().invoke(
            main, ["verify", "--report", str(out), "--start", str(DAY), "--end", str(DAY)]
        )
    finally:
        get_settings.cache_clear()
        world.engine.dispose()
    assert one.exit_code == 0, one.output
    assert f"{DAY}: RMSE model" in one.output and "raw CMAQ" in one.output
    assert missing.exit_code == 1 and "no forecast is published" in missing.output
    assert report.exit_code == 0, report.output
    text = (out / "REPORT.md").read_text()
    assert "## Table 3" in text and "above raw CMAQ's on" in text and "peak hours" in text
    for png in ("rmse_by_hour.png", "skill_over_time.png", "grade_contingency.png"):
        assert (out / png).stat().st_size > 1000


def test_the_series_says_when_a_synthetic_model_made_its_forecasts(tmp_path: Path) -> None:
    world = World(tmp_path)
    Verifier(world.settings, world.sessions).verify(DAY)
    with transaction(world.sessions) as s:
        model = ModelRecord(
            name="convlstm-case3",
            version="test",
            case=3,
            sha256="0" * 64,
            synthetic=True,
            card={},
            registered_at=dt.datetime.now(dt.UTC),
        )
        s.add(model)
        s.flush()
        run = s.get(Run, world.run_id)
        assert run is not None
        run.model_id = model.id
    with _client(world) as client:
        series = client.get("/v1/verification", params={"to": str(DAY)}).json()
    assert series["synthetic"] is True and [d["date"] for d in series["days"]] == [str(DAY)]
    world.engine.dispose()


@pytest.mark.parametrize(
    "params",
    [
        {"to": "0001-01-05"},  # 29 days before is not a date: 422, not an OverflowError's 500
        {"to": "0001-01-01", "from": "0001-01-01"},
        {"to": "1765238400"},  # a Unix time is not a date
        {"to": "2024-01-09T00:00:00"},
        {"from": "20240109", "to": "2024-01-09"},
    ],
)
def test_series_dates_are_strict_and_the_calendars_ends_give_422(
    tmp_path: Path, params: dict[str, str]
) -> None:
    world = World(tmp_path)
    with _client(world) as client:
        r = client.get("/v1/verification", params=params)
        long = client.get("/v1/verification/2024-01-090000")
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert long.status_code == 422 and "10 characters" in long.text
    world.engine.dispose()
