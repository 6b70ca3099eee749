"""Answers of published runs computed once and reused: equal to fresh ones, never stale."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

from service.api import forecasts
from service.api.app import create_app
from service.api.deps import LRU
from service.api.reuse import ReusedAnswers, reusable

from .conftest import DAY, published_database

TOKEN = "test-Admin-token-0123456789-abcdefgh"
SEOUL = {"lat": 37.5665, "lon": 126.978}
POINT = f"/v1/forecasts/{DAY}/point"


def fresh_point(state, lat: float, lon: float, method: str) -> dict:  # type: ignore[no-untyped-def]
    """The point answer computed now, the slow way (dicts, the standard json module)."""
    run, field = forecasts.published(state, DAY)
    body = {
        "run": forecasts.run_meta(state, run),
        **forecasts.point_body(state, DAY, run, field, lat, lon, method),
    }
    return json.loads(json.dumps(body))  # type: ignore[no-any-return]


def test_a_reused_point_answer_equals_a_fresh_one(tmp_path: Path, tiny_model: Path) -> None:
    settings = published_database(tmp_path, tiny_model, TOKEN)
    app = create_app(settings)
    state = app.state.pm25
    with TestClient(app) as client:
        first = client.get(POINT, params=SEOUL)
        assert first.status_code == 200 and len(state.answers) == 1
        again = client.get(POINT, params=SEOUL)
        assert again.content == first.content
        assert again.headers["etag"] == first.headers["etag"]
        assert again.json() == fresh_point(state, SEOUL["lat"], SEOUL["lon"], "bilinear")
        nearest = client.get(POINT, params={**SEOUL, "method": "nearest"}).json()
        assert nearest == fresh_point(state, SEOUL["lat"], SEOUL["lon"], "nearest")
        # the batch joins the same cached bodies: each result is the point's answer and its id
        batch = client.post(
            f"/v1/forecasts/{DAY}/points",
            json={"points": [{**SEOUL, "id": "seoul"}, {"lat": 35.18, "lon": 129.08}]},
        ).json()
        assert batch["run"] == again.json()["run"] and batch["count"] == 2
        assert batch["results"][0] == {**{k: v for k, v in again.json().items() if k != "run"},
                                       "id": "seoul"}  # fmt: skip
        assert batch["results"][1] == {
            k: v for k, v in fresh_point(state, 35.18, 129.08, "bilinear").items() if k != "run"
        }
        # a conditional request still gets its 304 from the route
        etag = first.headers["etag"]
        assert client.get(POINT, params=SEOUL, headers={"If-None-Match": etag}).status_code == 304


def test_a_new_publication_is_served_not_the_kept_answer(tmp_path: Path, tiny_model: Path) -> None:
    from service.jobs import run_daily_forecast
    from service.storage.db import make_engine, session_factory

    settings = published_database(tmp_path, tiny_model, TOKEN)
    settings = settings.model_copy(update={"api_cache_seconds": 0.5})
    app = create_app(settings)
    with TestClient(app) as client:
        for url, params in [(POINT, SEOUL), (f"/v1/forecasts/{DAY}/stations", {})]:
            first = client.get(url, params=params)
            assert first.json()["run"]["run_id"] == 1
            assert client.get(url, params=params).content == first.content
        engine = make_engine(settings.database_url.get_secret_value())
        out = run_daily_forecast(DAY, settings=settings, sessions=session_factory(engine))
        engine.dispose()
        assert out.status.value == "succeeded"
        time.sleep(0.6)  # the routes see a re-run after api_cache_seconds
        for url, params in [(POINT, SEOUL), (f"/v1/forecasts/{DAY}/stations", {})]:
            renewed = client.get(url, params=params)
            assert renewed.json()["run"]["run_id"] == 2
            assert renewed.json()["run"]["attempt"] == 2


@pytest.fixture()
def tiny_app() -> tuple[TestClient, dict[str, int], LRU]:
    """An app of one route whose answer names the current run; counts the route's calls."""
    current = {"run": 1, "calls": 0}
    answers = LRU(16)
    app = FastAPI()
    app.add_middleware(
        ReusedAnswers,
        is_current=lambda day, run_id: run_id == current["run"],
        answers=answers,
    )

    @app.get("/thing")
    def thing(request: Request, status: int = 200, mark: bool = True) -> PlainTextResponse:
        current["calls"] += 1
        if mark:
            reusable(request, dt.date(2024, 1, 9), current["run"])
        return PlainTextResponse(f"run {current['run']} " + "x" * 2000, status_code=status)

    return TestClient(app), current, answers


def test_kept_answers_are_sent_again_until_the_run_changes(tiny_app) -> None:  # type: ignore[no-untyped-def]
    client, current, _ = tiny_app
    assert client.get("/thing").text.startswith("run 1")
    assert client.get("/thing").text.startswith("run 1") and current["calls"] == 1
    current["run"] = 2
    assert client.get("/thing").text.startswith("run 2") and current["calls"] == 2
    assert client.get("/thing").text.startswith("run 2") and current["calls"] == 2


def test_only_marked_whole_200_answers_are_kept_per_encoding(tiny_app) -> None:  # type: ignore[no-untyped-def]
    client, current, answers = tiny_app
    client.get("/thing", params={"mark": False})
    client.get("/thing", params={"status": 203})
    assert len(answers) == 0 and current["calls"] == 2
    client.get("/thing", headers={"Accept-Encoding": "identity"})
    client.get("/thing", headers={"Accept-Encoding": "gzip"})
    assert len(answers) == 2  # gzipped or not: two answers
    client.get("/thing", headers={"If-None-Match": '"x"', "Accept-Encoding": "identity"})
    assert current["calls"] == 5  # conditional requests always reach the route


def test_two_accept_encoding_headers_cannot_put_gzip_under_the_plain_key(
    tmp_path: Path, tiny_model: Path
) -> None:
    """The key reads Accept-Encoding (every field line, q-values) as the route and the gzip
    middleware do; and a gzipped answer is never kept where a client that refuses gzip would
    get it."""
    settings = published_database(tmp_path, tiny_model, TOKEN).model_copy(
        update={"api_cache_seconds": 300}
    )
    url = f"/v1/forecasts/{DAY}/stations"
    with TestClient(create_app(settings)) as client:
        first = client.get(
            url, headers=[("accept-encoding", "gzip"), ("accept-encoding", "identity")]
        )
        assert first.status_code == 200
        for _ in range(2):  # the second time from memory, if kept
            plain = client.get(url, headers={"accept-encoding": "identity"})
            assert plain.status_code == 200
            assert plain.headers.get("content-encoding") is None
            assert json.loads(plain.content)  # a plain JSON body, not gzip bytes
