"""OGC API - EDR beside /v1: documents valid by the field's models, values equal to /v1's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from covjson_pydantic.coverage import Coverage, CoverageCollection
from edr_pydantic.capabilities import ConformanceModel, LandingPageModel
from edr_pydantic.collections import Collections, Instance, Instances
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings

from .conftest import DAY, published_database

TOKEN = "edr-Admin-token-0123456789-abcdefghij"
EDR = "/edr/collections/pm25-forecast"
SEOUL, BUSAN = (126.978, 37.5665), (129.0756, 35.1796)
BOX = (126.5, 37.0, 127.5, 37.8)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return published_database(tmp_path_factory.mktemp("edr"), Settings().model_path, TOKEN)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def v1_point(client: TestClient, lon: float, lat: float, method: str) -> list[float]:
    r = client.get(f"/v1/forecasts/{DAY}/point", params={"lat": lat, "lon": lon, "method": method})
    assert r.status_code == 200
    values: list[float] = r.json()["values"]
    return values


def v1_cells_in_box(values: Any, lon_c: Any, lat_c: Any, box: tuple[float, ...]) -> Any:
    inside = (lon_c >= box[0]) & (lon_c <= box[2]) & (lat_c >= box[1]) & (lat_c <= box[3])
    return np.asarray(values)[:, inside]


def covjson_grid_cells(cov: dict[str, Any]) -> tuple[Any, Any]:
    """The non-null cells of a Grid coverage, (hour, cell) in row-major order, and the mask."""
    rng = cov["ranges"]["pm25"]
    arr = np.array([np.nan if v is None else v for v in rng["values"]]).reshape(rng["shape"])
    keep = ~np.isnan(arr[0])
    return arr[:, keep], keep


def test_landing_conformance_collections_validate_as_edr_documents(client: TestClient) -> None:
    landing = LandingPageModel.model_validate_json(client.get("/edr").text)
    assert {link.rel for link in landing.links} >= {"conformance", "data", "service-desc"}
    conf = ConformanceModel.model_validate_json(client.get("/edr/conformance").text)
    assert any(c.endswith("/conf/core") for c in conf.conformsTo)
    cols = Collections.model_validate_json(client.get("/edr/collections").text)
    (col,) = cols.collections
    assert col.id == "pm25-forecast" and col.crs == ["OGC:CRS84"]
    pm25 = col.parameter_names.root["pm25"]
    assert pm25.unit is not None and pm25.unit.label == "ug/m3"
    assert "pm2p5" in (pm25.observedProperty.id or "")
    minlon, minlat, maxlon, maxlat = col.extent.spatial.bbox[0]
    assert 123 < minlon < 126 < 129 < maxlon < 132 and 32 < minlat < 35 < 38 < maxlat < 40
    assert col.extent.temporal is not None
    first, last = col.extent.temporal.interval[0]
    assert first.isoformat() == f"{DAY}T00:00:00+09:00" and last.hour == 23
    assert col.data_queries is not None and col.data_queries.cube is not None
    one = client.get(EDR).json()
    assert one["id"] == "pm25-forecast"
    insts = Instances.model_validate_json(client.get(f"{EDR}/instances").text)
    assert [i.id for i in insts.instances] == [DAY.isoformat()]
    inst = Instance.model_validate_json(client.get(f"{EDR}/instances/{DAY}").text)
    assert inst.id == DAY.isoformat()


def test_openapi_lists_the_edr_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for query in ("position", "radius", "area", "cube", "locations"):
        assert f"/edr/collections/{{collection_id}}/{query}" in paths
        assert f"/edr/collections/{{collection_id}}/instances/{{instance_id}}/{query}" in paths


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
def test_position_point_equals_v1_and_states_its_method(client: TestClient, method: str) -> None:
    lon, lat = SEOUL
    r = client.get(f"{EDR}/position", params={"coords": f"POINT({lon} {lat})", "method": method})
    assert r.status_code == 200 and r.headers["content-type"] == "application/prs.coverage+json"
    cov = Coverage.model_validate_json(r.text)
    assert cov.domain.domainType is not None and cov.domain.domainType.value == "PointSeries"
    assert r.json()["interpolation"] == method
    assert r.json()["ranges"]["pm25"]["values"] == v1_point(client, lon, lat, method)
    times = r.json()["domain"]["axes"]["t"]["values"]
    assert len(times) == 24 and times[0] == f"{DAY}T00:00:00+09:00"
    # the instance gives the same answer, and `interpolation` is the same parameter
    inst = client.get(
        f"{EDR}/instances/{DAY}/position",
        params={"coords": f"POINT({lon} {lat})", "interpolation": method},
    )
    assert inst.json()["ranges"] == r.json()["ranges"]


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
def test_position_multipoint_equals_v1_and_leaves_out_outside_points(
    client: TestClient, method: str
) -> None:
    coords = f"MULTIPOINT(({SEOUL[0]} {SEOUL[1]}),({BUSAN[0]} {BUSAN[1]}),(100 10))"
    r = client.get(f"{EDR}/position", params={"coords": coords, "method": method})
    assert r.status_code == 200
    body = r.json()
    CoverageCollection.model_validate_json(r.text)
    assert len(body["coverages"]) == 2 and body["pm25:omitted"] == ["POINT(100.0 10.0)"]
    for cov, (lon, lat) in zip(body["coverages"], (SEOUL, BUSAN), strict=True):
        assert cov["ranges"]["pm25"]["values"] == v1_point(client, lon, lat, method)


def test_datetime_selects_valid_hours(client: TestClient) -> None:
    coords = f"POINT({SEOUL[0]} {SEOUL[1]})"
    full = v1_point(client, *SEOUL, "bilinear")
    one = client.get(
        f"{EDR}/position", params={"coords": coords, "datetime": f"{DAY}T05:00:00+09:00"}
    ).json()
    assert one["ranges"]["pm25"]["values"] == [full[5]]
    utc = client.get(
        f"{EDR}/position", params={"coords": coords, "datetime": f"{DAY}T00:00:00Z/.."}
    ).json()
    assert utc["ranges"]["pm25"]["values"] == full[9:]  # 00 UTC is 09 KST
    assert utc["domain"]["axes"]["t"]["values"][0] == f"{DAY}T09:00:00+09:00"
    none = client.get(f"{EDR}/position", params={"coords": coords, "datetime": "2030-01-01"})
    assert none.status_code == 400


def test_cube_equals_the_v1_grid_cells_inside_the_bbox(client: TestClient) -> None:
    grid = client.get(f"/v1/forecasts/{DAY}/grid").json()
    r = client.get(f"{EDR}/cube", params={"bbox": ",".join(map(str, BOX))})
    assert r.status_code == 200
    cov = r.json()
    Coverage.model_validate_json(r.text)
    lon = np.asarray(cov["pm25:lon"]).reshape(cov["ranges"]["pm25"]["shape"][1:])
    lat = np.asarray(cov["pm25:lat"]).reshape(lon.shape)
    got, keep = covjson_grid_cells(cov)
    r0, c0 = cov["pm25:rows"][0], cov["pm25:cols"][0]
    rows, cols = np.nonzero(keep)
    expected = np.asarray(grid["values"])[:, rows + r0, cols + c0]
    assert got.shape[1] > 10 and np.array_equal(got, expected)
    inside = (lon >= BOX[0]) & (lon <= BOX[2]) & (lat >= BOX[1]) & (lat <= BOX[3])
    assert np.array_equal(inside, keep)
    nc = client.get(f"{EDR}/cube", params={"bbox": ",".join(map(str, BOX)), "f": "NetCDF"})
    assert nc.status_code == 200 and nc.content[:4] == b"\x89HDF"


def test_area_and_radius_select_the_cells_they_name(client: TestClient) -> None:
    x0, y0, x1, y1 = BOX
    poly = f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"
    area = client.get(f"{EDR}/area", params={"coords": poly}).json()
    cube = client.get(f"{EDR}/cube", params={"bbox": ",".join(map(str, BOX))}).json()
    assert area["pm25:cells"] == cube["pm25:cells"]  # the same box, as a polygon
    assert covjson_grid_cells(area)[0].shape == covjson_grid_cells(cube)[0].shape
    nc = client.get(f"{EDR}/area", params={"coords": poly, "f": "netcdf"})
    assert nc.headers["content-type"] == "application/x-netcdf"
    near_r = client.get(
        f"{EDR}/radius",
        params={"coords": f"POINT({SEOUL[0]} {SEOUL[1]})", "within": 20, "within-units": "km"},
    )
    near = near_r.json()
    far = client.get(
        f"{EDR}/radius",
        params={"coords": f"POINT({SEOUL[0]} {SEOUL[1]})", "within": 50, "within-units": "km"},
    ).json()
    assert 5 < near["pm25:cells"] < far["pm25:cells"] < 150  # 81 km2 cells: pi 50^2 / 81 ~ 97
    Coverage.model_validate_json(near_r.text)


def test_locations_list_stations_and_one_station_equals_v1(client: TestClient) -> None:
    r = client.get(f"{EDR}/locations")
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    features = r.json()["features"]
    assert len(features) > 300 and features[0]["geometry"]["type"] == "Point"
    code = features[0]["id"]
    one = client.get(f"{EDR}/locations/{code}")
    assert one.status_code == 200
    v1 = client.get(f"/v1/stations/{code}/forecast", params={"date": DAY.isoformat()}).json()
    assert one.json()["ranges"]["pm25"]["values"] == v1["values"]
    assert client.get(f"{EDR}/locations/no-such-station").status_code == 404


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        (f"{EDR}/position", {"coords": "POINT(100 10)"}, 400),
        (f"{EDR}/position", {"coords": "LINESTRING(1 2, 3 4)"}, 400),
        (f"{EDR}/position", {"coords": "POINT(127 37)", "crs": "EPSG:3857"}, 400),
        (f"{EDR}/position", {"coords": "POINT(127 37)", "parameter-name": "o3"}, 400),
        (f"{EDR}/position", {"coords": "POINT(127 37)", "method": "cubic"}, 400),
        (f"{EDR}/position", {"coords": "POINT(127 37)", "datetime": "yesterday"}, 400),
        (f"{EDR}/position", {"coords": "POINT(127 37)", "f": "NetCDF"}, 400),
        (f"{EDR}/cube", {"bbox": "1,2,3"}, 400),
        (f"{EDR}/cube", {"bbox": "100,0,101,1"}, 400),
        (f"{EDR}/radius", {"coords": "POINT(127 37)", "within": 5, "within-units": "ft"}, 400),
        ("/edr/collections/other/position", {"coords": "POINT(127 37)"}, 404),
        (f"{EDR}/instances/2030-01-01/position", {"coords": "POINT(127 37)"}, 404),
        (f"{EDR}/instances/today/position", {"coords": "POINT(127 37)"}, 404),
        (f"{EDR}/instances/2024-13-45/position", {"coords": "POINT(127 37)"}, 404),
        (f"{EDR}/position", {"coords": "POINT(127 37)", "datetime": str(DAY)}, 400),
    ],
)
def test_errors_are_problem_documents(
    client: TestClient, path: str, params: dict[str, Any], status: int
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == status and r.json()["detail"]


# --- an independent client: OWSLib against a real uvicorn process --------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[str]:
    port = _free_port()
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PM25_DATABASE_URL": settings.database_url.get_secret_value(),
        "PM25_ADMIN_TOKEN": TOKEN,
        "PYTHONPATH": str(root),
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "service.api.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=root, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            if httpx.get(f"{url}/v1/ready", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "no server")
        time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)


def test_owslib_reads_a_position_and_a_cube_equal_to_v1(server: str) -> None:
    edr_client = pytest.importorskip("owslib.ogcapi.edr")
    api = edr_client.EnvironmentalDataRetrieval(f"{server}/edr/", timeout=60)
    assert api.data() == ["pm25-forecast"]
    assert "pm25" in api.collection("pm25-forecast")["parameter_names"]
    lon, lat = SEOUL
    for method in ("bilinear", "nearest"):
        cov = api.query_data(
            "pm25-forecast", f"position?method={method}", coords=f"POINT({lon} {lat})"
        )
        v1 = httpx.get(
            f"{server}/v1/forecasts/{DAY}/point", params={"lat": lat, "lon": lon, "method": method}
        ).json()
        assert cov["interpolation"] == method
        assert cov["ranges"]["pm25"]["values"] == v1["values"]
    cube = api.query_data(
        "pm25-forecast", "cube", bbox=list(BOX), datetime_=f"{DAY}T12:00:00+09:00"
    )
    grid = httpx.get(f"{server}/v1/forecasts/{DAY}/grid", params={"hour": 12}).json()
    got, keep = covjson_grid_cells(cube)
    rows, cols = np.nonzero(keep)
    expected = np.asarray(grid["values"])[
        :, rows + cube["pm25:rows"][0], cols + cube["pm25:cols"][0]
    ]
    assert got.shape == (1, keep.sum()) and np.array_equal(got, expected)


@pytest.mark.parametrize(
    "query",
    [
        f"position?coords=POINT({SEOUL[0]} {SEOUL[1]})",
        f"radius?coords=POINT({SEOUL[0]} {SEOUL[1]})&within=20&within-units=km",
        "area?coords=POLYGON((126.5 37,127.5 37,127.5 37.8,126.5 37))",
        f"cube?bbox={','.join(map(str, BOX))}",
        "locations?f=CoverageJSON",
        "locations/111121",
    ],
)
def test_edr_answers_carry_an_etag_tied_to_the_run_and_honour_if_none_match(
    client: TestClient, query: str
) -> None:
    for path in (f"{EDR}/{query}", f"{EDR}/instances/{DAY}/{query}"):
        first = client.get(path, headers={"Accept-Encoding": "identity"})
        assert first.status_code == 200, first.text
        etag = first.headers["etag"]
        assert etag.startswith('"run-1-edr-')
        again = client.get(path, headers={"If-None-Match": f'"a", W/{etag}'})
        assert again.status_code == 304 and again.headers["etag"] == etag
        packed = client.get(path, headers={"Accept-Encoding": "gzip"})
        if packed.headers.get("content-encoding") == "gzip":
            assert packed.headers["etag"] != etag
            r = client.get(path, headers={"If-None-Match": packed.headers["etag"]})
            assert r.status_code == 304


def test_instance_latest_is_the_newest_run_and_a_bare_date_is_refused(client: TestClient) -> None:
    coords = f"POINT({SEOUL[0]} {SEOUL[1]})"
    latest = client.get(f"{EDR}/instances/latest/position", params={"coords": coords})
    dated = client.get(f"{EDR}/instances/{DAY}/position", params={"coords": coords})
    assert latest.status_code == 200 and latest.json() == dated.json()
    assert client.get(f"{EDR}/instances/latest").json()["id"] == str(DAY)
    unknown = client.get(f"{EDR}/instances/today/position", params={"coords": coords})
    assert unknown.status_code == 404 and "'latest'" in unknown.json()["detail"]
    for bare in (str(DAY), DAY.strftime("%Y%m%d"), f"{DAY}/.."):
        r = client.get(f"{EDR}/position", params={"coords": coords, "datetime": bare})
        assert r.status_code == 400 and "no time of day" in r.json()["detail"], bare
    whole_day = f"{DAY}T00:00:00+09:00/{DAY}T23:00:00+09:00"  # as the refusal suggests
    r = client.get(f"{EDR}/position", params={"coords": coords, "datetime": whole_day})
    assert r.json()["ranges"]["pm25"]["values"] == v1_point(client, *SEOUL, "bilinear")


def test_edr_metadata_says_synthetic_when_the_model_was_trained_on_it(client: TestClient) -> None:
    assert client.get(f"/v1/forecasts/{DAY}/point?lat=37.5&lon=127").json()["run"][
        "trained_on_synthetic_data"
    ]
    landing = LandingPageModel.model_validate_json(client.get("/edr").text)
    assert landing.description is not None and "SYNTHETIC" in landing.description
    (col,) = Collections.model_validate_json(client.get("/edr/collections").text).collections
    assert "SYNTHETIC" in (col.keywords or []) and "SYNTHETIC" in (col.description or "")
    inst = Instance.model_validate_json(client.get(f"{EDR}/instances/{DAY}").text)
    assert "SYNTHETIC" in (inst.description or "")
    (listed,) = Instances.model_validate_json(client.get(f"{EDR}/instances").text).instances
    assert "SYNTHETIC" in (listed.keywords or [])
    from service.api import edr_documents as docs

    real = docs.landing_page("http://x/edr")  # a real model: no label
    assert real.description is not None and "SYNTHETIC" not in real.description
