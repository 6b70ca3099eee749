"""The HTTP API through the real stack (TestClient), on a real database and a real run."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.selection import alert_hours, grade
from service.settings import Settings

from .conftest import published_database

TOKEN = "test-Admin-token-0123456789-abcdefgh"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path):  # type: ignore[no-untyped-def]
    settings = published_database(tmp_path_factory.mktemp("api"), tiny_model, TOKEN)
    with TestClient(create_app(settings)) as client:
        yield client, settings, 1


def test_grid_json_names_its_run_and_grid(served) -> None:  # type: ignore[no-untyped-def]
    client, _, run_id = served
    r = client.get("/v1/forecasts/2024-01-09/grid")
    assert r.status_code == 200
    body = r.json()
    assert body["run"]["run_id"] == run_id and body["run"]["trained_on_synthetic_data"] is True
    assert (
        body["run"]["model"]["name"] == "convlstm-case3"
        and len(body["run"]["model"]["sha256"]) == 64
    )
    assert body["run"]["cmaq_init"] == "2024-01-09T00:00:00+09:00"  # one convention: KST
    assert np.asarray(body["values"]).shape == (24, 68, 59)
    assert body["valid_times"][0] == "2024-01-09T00:00:00+09:00"
    assert body["grid"]["ncols"] == 59 and body["grid"]["projection"] == "lambert_conformal_conic"
    assert "ETag" in r.headers and "app;dur=" in r.headers["Server-Timing"]


def test_one_hour_and_latest(served) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = served
    r = client.get("/v1/forecasts/latest/grid", params={"hour": 5})
    assert r.status_code == 200 and r.json()["hours"] == [5]
    assert r.json()["valid_times"] == ["2024-01-09T05:00:00+09:00"]
    assert np.asarray(r.json()["values"]).shape == (1, 68, 59)


def test_etag_gives_304(served) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = served
    etag = client.get("/v1/forecasts/2024-01-09/grid", params={"hour": 1}).headers["ETag"]
    r = client.get(
        "/v1/forecasts/2024-01-09/grid", params={"hour": 1}, headers={"If-None-Match": etag}
    )
    assert r.status_code == 304 and r.content == b""


def test_gzip_is_used_when_asked(served) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = served
    r = client.get("/v1/forecasts/2024-01-09/grid", headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("content-encoding") == "gzip"


def test_netcdf_opens_in_xarray_with_the_grid_mapping(served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import xarray as xr

    client, _, run_id = served
    r = client.get("/v1/forecasts/2024-01-09/grid", params={"format": "netcdf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-netcdf"
    path = tmp_path / "f.nc"
    path.write_bytes(r.content)
    with xr.open_dataset(path) as ds:
        assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["run_id"] == run_id
        pm = ds["pm25"]
        assert pm.shape == (24, 68, 59) and pm.attrs["grid_mapping"] == "lambert_conformal_conic"
        gm = ds["lambert_conformal_conic"].attrs
        assert gm["grid_mapping_name"] == "lambert_conformal_conic"
        assert list(gm["standard_parallel"]) == [30.0, 60.0]
        assert ds["lat"].shape == (68, 59) and ds["x"].attrs["units"] == "m"
        assert str(ds["time"].values[0])[:16] == "2024-01-08T15:00"
        from pyproj import CRS

        assert CRS.from_cf(gm).equals(
            CRS.from_proj4("+proj=lcc +lat_1=30 +lat_2=60 +lon_0=126 +lat_0=38 +R=6370000 +units=m")
        )
    json_values = np.asarray(client.get("/v1/forecasts/2024-01-09/grid").json()["values"])
    with xr.open_dataset(path) as ds:
        np.testing.assert_allclose(ds["pm25"].values, json_values, atol=0.006)


def test_png_map(served) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = served
    r = client.get("/v1/forecasts/2024-01-09/grid", params={"format": "png", "hour": 8})
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    image = Image.open(io.BytesIO(r.content))
    assert image.width > 300 and image.height > 300
    assert client.get("/v1/forecasts/2024-01-09/grid", params={"format": "png"}).status_code == 422


def test_point_at_a_cell_centre_equals_the_grid_value(served) -> None:  # type: ignore[no-untyped-def]
    client, settings, _ = served
    from service.grid import Grid

    grid = Grid(settings.grid)
    lat, lon = grid.rowcol_to_latlon(52, 25)
    values = np.asarray(client.get("/v1/forecasts/2024-01-09/grid").json()["values"])
    for method in ("bilinear", "nearest"):
        r = client.get(
            "/v1/forecasts/2024-01-09/point",
            params={"lat": float(lat), "lon": float(lon), "method": method},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        np.testing.assert_allclose(body["values"], values[:, 52, 25], atol=0.011)
        assert body["nearest_cell"] == {
            "row": 52,
            "col": 25,
            "lat": pytest.approx(float(lat), abs=1e-4),
            "lon": pytest.approx(float(lon), abs=1e-4),
        }
        assert body["distance_to_nearest_cell_km"] < 0.01
        assert body["grade"] in ("good", "moderate", "bad", "very_bad") and "grade_ko" in body


def test_point_outside_the_grid_says_where_the_grid_is(served) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = served
    r = client.get("/v1/forecasts/2024-01-09/point", params={"lat": 39.9, "lon": 116.4})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["title"] == "Outside the grid" and "33.16" in body["detail"]
    assert body["grid_bounds"]["lon"][0] == pytest.approx(124.34, abs=0.01)


def test_points_batch_is_bounded(served) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = served
    ok = client.post(
        "/v1/forecasts/2024-01-09/points",
        json={
            "points": [{"lat": 37.5665, "lon": 126.978, "id": "seoul"}, {"lat": 10.0, "lon": 10.0}]
        },
    )
    assert ok.status_code == 200
    results = ok.json()["results"]
    assert results[0]["id"] == "seoul" and len(results[0]["values"]) == 24
    assert "outside" in results[1]["error"]
    too_many = client.post(
        "/v1/forecasts/2024-01-09/points", json={"points": [{"lat": 37.5, "lon": 127.0}] * 501}
    )
    assert too_many.status_code == 422 and too_many.json()["status"] == 422


def test_stations_catalogue_and_forecasts(served) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = served
    cat = client.get("/v1/stations").json()
    assert cat["count"] == 657 and sum(s["in_grid"] for s in cat["stations"]) == 655
    one = client.get("/v1/stations/111121/forecast", params={"date": "2024-01-09"})
    assert one.status_code == 200 and one.json()["station"]["station_name"] == "중구"
    all_json = client.get("/v1/forecasts/2024-01-09/stations").json()
    assert all_json["count"] == 655
    csv_text = client.get("/v1/forecasts/2024-01-09/stations", params={"format": "csv"}).text
    assert csv_text.startswith("\ufefftarget_date_kst,")  # UTF-8 with BOM: Korean in Excel
    rows = list(csv.DictReader(io.StringIO(csv_text.lstrip("\ufeff"))))
    header = list(rows[0])
    assert header[:3] == ["target_date_kst", "station_code", "station_name"]
    assert header[9:33] == [f"h{h:02d}_kst_ug_m3" for h in range(24)]
    assert header[33:] == [
        "run_id",
        "model",
        "cmaq_init",
        "wrf_init",
        "cmaq_fallback",
        "trained_on_synthetic_data",
    ]
    assert len(rows) == 655
    assert {r["run_id"] for r in rows} == {"1"}
    assert rows[0]["model"].startswith("convlstm-case3 ")
    assert rows[0]["cmaq_init"] == "2024-01-09T00:00:00+09:00" and rows[0]["wrf_init"]
    assert {r["trained_on_synthetic_data"] for r in rows} == {"true"}
    assert client.get("/v1/stations/999999/forecast").status_code == 404


def test_unknown_dates_give_404_saying_what_exists(served) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = served
    r = client.get("/v1/forecasts/2024-02-01/grid")
    assert r.status_code == 404 and "latest forecast is for 2024-01-09" in r.json()["detail"]
    bad = client.get("/v1/forecasts/not-a-date/grid")
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.json()["detail"]


def test_runs_and_status(served) -> None:  # type: ignore[no-untyped-def]
    client, _, run_id = served
    runs = client.get("/v1/runs", params={"status": "succeeded", "limit": 5}).json()
    assert runs["total"] >= 1 and runs["runs"][0]["run_id"] == run_id
    one = client.get("/v1/runs/2024-01-09").json()
    latest = one["latest"]
    assert one["published_run_id"] == run_id and latest["status"] == "succeeded"
    assert {"ingest", "predict", "store"} <= set(latest["timings_s"])
    assert latest["inputs"][0]["sha256"] and latest["model"]["case"] == 3
    assert latest["finished_at"].endswith("+09:00")
    assert client.get("/v1/runs/latest").json()["run_id"] == run_id
    status = client.get("/v1/status").json()
    assert len(status["last_14_days"]) == 14 and status["last_success"]["date"] == "2024-01-09"


def test_rerun_needs_the_admin_token(served) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = served
    assert client.post("/v1/runs/2024-01-09").status_code == 401
    wrong = client.post("/v1/runs/2024-01-09", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and TOKEN not in wrong.text
    ok = client.post("/v1/runs/2024-01-09", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 202 and ok.json()["status"] == "pending"


def test_health_ready_metrics(served) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = served
    assert client.get("/v1/health").json()["status"] == "ok"
    assert client.get("/v1/ready").json()["status"] == "ready"
    text = client.get("/metrics").text
    assert "pm25_http_requests_total" in text and "pm25_latest_forecast_age_seconds" in text
    assert 'pm25_runs{status="succeeded"}' in text
    assert client.get("/docs").status_code == 200 and client.get("/openapi.json").status_code == 200


def test_the_service_refuses_a_weak_admin_token(tmp_path: Path) -> None:
    for token in ("", "changeme", "short", "a" * 40, "test-admin-token-0123456789"):
        with pytest.raises(RuntimeError, match="PM25_ADMIN_TOKEN"):
            create_app(Settings(database_url=f"sqlite:///{tmp_path}/x.sqlite", admin_token=token))


def test_grades_and_alerts() -> None:
    assert grade(15.4)["grade"] == "good" and grade(15.5)["grade"] == "moderate"
    assert grade(35)["grade"] == "moderate" and grade(75.4)["grade"] == "bad"
    assert grade(76)["grade"] == "very_bad" and grade(76)["grade_ko"] == "매우나쁨"
    values = np.array([70, 80, 74, 75, 76, 150, 151] + [0] * 17, np.float32)
    assert alert_hours(values, 75) == [4, 5, 6] and alert_hours(values, 150) == [6]


def test_the_api_never_imports_tensorflow(tmp_path: Path) -> None:
    code = (
        "import sys; from service.api.app import create_app; from service.settings import Settings; "
        f"create_app(Settings(database_url='sqlite:///{tmp_path}/y.sqlite', admin_token={TOKEN!r})); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'jax')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ},
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_page_loads_a_script_from_a_cdn(served) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = served
    assert client.get("/redoc").status_code == 404
    docs = client.get("/docs").text
    assert "cdn." not in docs and "https://" not in docs.split("<body>")[0]


def test_accept_encoding_q_values_decide_and_vary_is_named_once(served) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = served
    paths = [  # a cached gzip payload, a body the middleware gzips, a kept answer (twice)
        ("/v1/forecasts/2024-01-09/grid", {"hour": 3}),
        ("/v1/forecasts/2024-01-09/point", {"lat": 37.5, "lon": 127.0}),
        ("/v1/forecasts/2024-01-09/stations", {}),
        ("/v1/forecasts/2024-01-09/stations", {}),
    ]
    cases = {
        "gzip;q=0, identity": None,
        "gzip; q=0.000": None,
        "*;q=0": None,
        "*": "gzip",
        "identity;q=0.5, gzip;q=0.4": "gzip",
        "gzip;q=nan": None,
    }
    for path, params in paths:
        for header, expected in cases.items():
            r = client.get(path, params=params, headers={"Accept-Encoding": header})
            assert r.status_code == 200, r.text
            assert r.headers.get("content-encoding") == expected, (path, header)
            assert r.json()["run"]["run_id"] == 1  # httpx decodes what was sent
            vary = [v.strip().lower() for v in r.headers.get("vary", "").split(",")]
            assert vary.count("accept-encoding") <= 1, (path, header, vary)


def test_the_station_forecast_has_an_etag_and_if_none_match_is_weak(served) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = served
    url = "/v1/stations/111121/forecast"
    plain = client.get(url, params={"date": "2024-01-09"}, headers={"Accept-Encoding": "identity"})
    packed = client.get(url, params={"date": "2024-01-09"}, headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == 200 and packed.headers["content-encoding"] == "gzip"
    etag, gz_etag = plain.headers["etag"], packed.headers["etag"]
    assert etag.startswith('"run-1-') and gz_etag != etag  # two representations, two tags
    for inm, encoding, tag in [
        (etag, "identity", etag),
        (f"W/{etag}", "identity", etag),  # weak comparison
        (f'"nope", W/{gz_etag}', "gzip", gz_etag),  # a list
        (gz_etag, "identity", gz_etag),  # the tag the client holds, whatever it asks now
        ("*", "gzip", gz_etag),
    ]:
        r = client.get(
            url,
            params={"date": "2024-01-09"},
            headers={"If-None-Match": inm, "Accept-Encoding": encoding},
        )
        assert r.status_code == 304 and r.headers["etag"] == tag, (inm, encoding)
    other = client.get(url, params={"date": "2024-01-09"}, headers={"If-None-Match": '"x"'})
    assert other.status_code == 200


def test_accepts_gzip_reads_q_values_and_every_field_line() -> None:
    from service.api.encoding import accepts_gzip

    assert accepts_gzip(["gzip"]) and accepts_gzip(["deflate", "x-gzip;q=0.1"])
    assert not accepts_gzip(["gzip;q=0"]) and not accepts_gzip(["identity"])
    assert not accepts_gzip(["gzip;q=0, *"])  # named gzip decides over *
    assert not accepts_gzip(["gzip;q=2"]) and not accepts_gzip(["gzip;q=abc"])


def test_the_pages_cached_forecast_counts_against_the_caches_byte_limit(served) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = served
    files = client.app.state.pm25.files
    r = client.get("/v1/page/forecast/2024-01-09", headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200 and ("page", 1) in files
    _, counted = files._data[("page", 1)]  # the size the LRU holds against max_bytes
    assert counted == len(r.content) > 100_000 and files.nbytes >= counted


def test_query_parameters_are_single_valued_finite_and_plainly_written(served) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = served
    point = "/v1/forecasts/2024-01-09/point"
    twice = client.get(f"{point}?lat=37.5&lat=35&lon=127")
    assert twice.status_code == 422 and twice.json()["parameter"] == "lat"
    assert "'lat' is given more than once" in twice.json()["detail"]
    assert client.get("/v1/runs?limit=5&limit=6").status_code == 422
    for lat in ("nan", "inf", "-Infinity"):
        r = client.get(point, params={"lat": lat, "lon": 127})
        assert r.status_code == 422 and "finite number" in r.text, (lat, r.text)
        assert "less than" not in r.text and "greater than" not in r.text
    for bad in ({"lat": "37.5_0", "lon": "127"}, {"lat": "37.5", "lon": "1_27"}):
        assert client.get(point, params=bad).status_code == 422, bad
    assert client.get(point, params={"lat": "3.75e1", "lon": "127"}).status_code == 200
    grid = "/v1/forecasts/2024-01-09/grid"
    assert client.get(grid, params={"hour": "1_2"}).status_code == 422
    assert client.get("/v1/runs", params={"limit": "1_0"}).status_code == 422
    body = '{"points": [{"lat": NaN, "lon": 127}]}'
    r = client.post(
        "/v1/forecasts/2024-01-09/points",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422 and "finite number" in r.text


def test_the_png_title_fits_the_picture_whatever_the_model_name() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from service.api.coast import load_coastline
    from service.api.render import png_figure
    from service.grid import Grid
    from service.settings import GridSpec

    grid = Grid(GridSpec())
    name = "convlstm-case3+validation=seasonal+margin=4+loss=weighted_mae+oversample=3+residual"
    title = (
        "PM2.5 forecast  2024-01-09  12:00 KST\n"
        f"run 123456 · model {name} 0.1.0+2021-12-31 · trained on SYNTHETIC data"
    )
    field = np.full(grid.shape, 20.0, np.float32)
    fig = png_figure(field, grid, load_coastline(), title=title, synthetic=True)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    (ax, _) = fig.axes[:2]
    text = ax.title if ax.title.get_text() else ax._left_title
    box, frame = text.get_window_extent(renderer), fig.bbox
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and box.y1 <= frame.y1, (box, frame)
    shown = text.get_text().replace("\n", "")
    for part in (name, "0.1.0+2021-12-31", "trained on SYNTHETIC data", "run 123456"):
        assert part in shown  # wrapped, nothing dropped
