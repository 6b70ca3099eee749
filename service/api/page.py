"""The page people read: ``/`` (map, stations, runs, verification), its assets, offline ``/docs``.

Everything the page needs ships with the package (``service/api/static/``): no CDN, no tiles,
no web fonts, so it works on a network with no way out. The page reads the public API like
any client; the only route of its own is ``/v1/page/geometry``, the coastline, graticule and
stations in grid coordinates, so the browser never needs a projection library.
"""

from __future__ import annotations

import base64
import gzip
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from service.api import forecasts
from service.api.coast import load_coastline
from service.api.deps import StateDep
from service.api.encoding import gzip_etag, request_accepts_gzip
from service.grid import Grid
from service.stations import Station
from service.timeaxis import valid_times_kst

STATIC = Path(__file__).resolve().parent / "static"
SWAGGER = "/static/vendor/swagger_ui"
router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/v1/page", tags=["page"])

# Revised Romanization of Korean, syllable by syllable (initial, medial, final jamo).
# fmt: off
_INITIALS = ("g", "kk", "n", "d", "tt", "r", "m", "b", "pp", "s", "ss", "-", "j", "jj", "ch", "k",
             "t", "p", "h")
_MEDIALS = ("a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae", "oe", "yo", "u", "wo",
            "we", "wi", "yu", "eu", "ui", "i")
_FINALS = ("-", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l", "m", "p",
           "p", "t", "t", "ng", "t", "t", "k", "t", "p", "t")
# fmt: on
# A final consonant before a silent initial is pronounced as the next syllable's initial.
_LINKED = {"k": "g", "t": "d", "p": "b", "l": "r", "n": "n", "m": "m", "ng": "ng"}


def romanise(text: str) -> str:
    """Hangul in Revised Romanization (letters only, no hyphens), other characters kept.

    Only the rules a search box needs: a final before a silent initial links to it, ㄹ after
    ㄹ or ㄴ is ``l``, and ㄹ after ㅇ, ㅁ, ㄱ or ㅂ is ``n``.

    Examples
    --------
    >>> romanise("중구"), romanise("종로구"), romanise("신림동"), romanise("서울특별시")
    ('junggu', 'jongnogu', 'sillimdong', 'seoulteukbyeolsi')
    """
    out: list[str] = []
    pending = ""  # the previous syllable's final, decided by the next initial
    for ch in text:
        code = ord(ch) - 0xAC00
        if not 0 <= code < 11172:
            out.append(pending + ch)
            pending = ""
            continue
        ini, med, fin = _INITIALS[code // 588], _MEDIALS[(code % 588) // 28], _FINALS[code % 28]
        if ini == "-":
            out.append(_LINKED.get(pending, pending))
            ini = ""
        elif ini == "r" and pending in ("l", "n"):  # 설악 seorak, 신림 sillim
            out.append("l")
            ini = "l"
        elif ini == "r" and pending in ("ng", "m", "k", "p"):  # 종로 jongno
            out.append(pending)
            ini = "n"
        else:
            out.append(pending)
        out.append(ini + med)
        pending = "" if fin == "-" else fin
    out.append(pending)
    return "".join(out)


def _grid_units(grid: Grid, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projected metres to grid units: 0 at the west/south edge, one unit per cell."""
    s = grid.spec
    return (x - s.xorig_m) / s.cell_m, (y - s.yorig_m) / s.cell_m


def _polyline(gx: np.ndarray, gy: np.ndarray) -> list[list[float] | None]:
    """Points rounded to 1/100 cell (90 m), ``None`` between parts, repeats dropped."""
    out: list[list[float] | None] = []
    last: list[float] | None = None
    for a, b in zip(gx.tolist(), gy.tolist(), strict=True):
        if a != a or b != b:  # NaN separates parts
            if out and out[-1] is not None:
                out.append(None)
            last = None
            continue
        p = [round(a, 2), round(b, 2)]
        if p != last:
            out.append(p)
            last = p
    return out


def _graticule(grid: Grid) -> list[dict[str, Any]]:
    """Whole-degree parallels and meridians over the grid, each a polyline in grid units."""
    lon_c, lat_c = grid.centre_lonlat
    lines = []
    lat_range = range(int(np.floor(lat_c.min())), int(np.ceil(lat_c.max())) + 1)
    lon_range = range(int(np.floor(lon_c.min())), int(np.ceil(lon_c.max())) + 1)
    for lat in lat_range:
        lons = np.linspace(lon_c.min() - 1, lon_c.max() + 1, 60)
        gx, gy = _grid_units(grid, *grid.lonlat_to_xy(lons, np.full_like(lons, lat)))
        lines.append({"kind": "lat", "value": lat, "points": _polyline(gx, gy)})
    for lon in lon_range:
        lats = np.linspace(lat_c.min() - 1, lat_c.max() + 1, 60)
        gx, gy = _grid_units(grid, *grid.lonlat_to_xy(np.full_like(lats, lon), lats))
        lines.append({"kind": "lon", "value": lon, "points": _polyline(gx, gy)})
    return lines


def _station(grid: Grid, st: Station, cell: tuple[int, int] | None) -> dict[str, Any]:
    gx, gy = _grid_units(grid, *grid.lonlat_to_xy(st.lon, st.lat))
    return {
        "code": st.code or None,
        "name": st.name,
        "name_rom": romanise(st.name),
        "sido": st.sido,
        "sido_rom": romanise(st.sido),
        "lat": st.lat,
        "lon": st.lon,
        "x": round(float(gx), 3),
        "y": round(float(gy), 3),
        "in_grid": cell is not None,
    }


@lru_cache(maxsize=4)
def _geometry(grid: Grid, stations: tuple[Station, ...]) -> bytes:
    xy = load_coastline()
    gx, gy = _grid_units(grid, xy[:, 0].astype(float), xy[:, 1].astype(float))
    body = {
        "units": "grid cells from the south-west corner: x east (columns), y north (rows)",
        "grid": grid.describe(),
        "coastline": _polyline(gx, gy),
        "graticule": _graticule(grid),
        "stations": [_station(grid, st, grid.cell_of(st.lat, st.lon)) for st in stations],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _json(request: Request, body: bytes, headers: dict[str, str]) -> Response:
    """A JSON body compressed once and kept (the middleware would gzip it on every request)."""
    headers = {**headers, "Vary": "Accept-Encoding"}
    if request_accepts_gzip(request):
        if "ETag" in headers:  # another representation, another tag
            headers["ETag"] = gzip_etag(headers["ETag"])
        return Response(
            _gzip(body),
            media_type="application/json",
            headers={**headers, "Content-Encoding": "gzip"},
        )
    return Response(body, media_type="application/json", headers=headers)


@lru_cache(maxsize=8)
def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=6, mtime=0)


@api.get("/geometry", summary="Coastline, graticule and stations in grid coordinates")
def geometry(request: Request, state: StateDep) -> Response:
    """What the page draws under the field: coastline (the PNG maps' data), whole-degree
    lines and every station (with a romanised name for search), in grid-cell units."""
    body = _geometry(state.grid, state.stations)
    return _json(request, body, {"Cache-Control": "public, max-age=86400"})


@api.get("/forecast/{date}", summary="A forecast as the page reads it, in one small answer")
def page_forecast(date: str, request: Request, state: StateDep) -> Response:
    """The run, the field (24 hours, uint16 tenths of ug/m3, base64, row 0 south) and the
    station forecasts exactly as ``/v1/forecasts/{date}/stations`` serves them.

    One request instead of two, encoded once per run: the full-precision JSON grid takes
    about a second to encode, and the page only colours cells with it.
    """
    day, run, field = forecasts.forecast(date, state)
    etag = f'"run-{run.id}-page"'
    if (cached := forecasts.not_modified(request, etag)) is not None:
        return cached
    key = ("page", run.id)
    body = state.files.get(key)
    if body is None:
        tenths = np.clip(np.rint(np.asarray(field, np.float64) * 10), 0, 65535).astype("<u2")
        doc = {
            "run": forecasts.run_meta(state, run),
            "grid": forecasts.grid_description(state),
            "units": "ug/m3",
            "valid_times": [t.isoformat() for t in valid_times_kst(day)],
            "field": {
                "encoding": "base64 little-endian uint16, tenths of ug/m3",
                "shape": list(tenths.shape),
                "layout": "[hour][row][col], row 0 is the southern edge",
                "data": base64.b64encode(tenths.tobytes()).decode(),
            },
            "stations": forecasts.station_rows(state, day, field),
            "verification_api": True,  # GET /v1/verification ships with the page
        }
        encoded = json.dumps(doc, ensure_ascii=False).encode()
        body = state.files.put(key, encoded, len(encoded))  # counted against the byte limit
    headers = {"ETag": etag, "Cache-Control": forecasts.CACHE_CONTROL, "X-Run-Id": str(run.id)}
    return _json(request, body, headers)


@router.get("/")
def index() -> FileResponse:
    """The page."""
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/docs")
def docs() -> HTMLResponse:
    """Swagger UI from the packaged assets (works offline)."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="pm25-forecast - API",
        swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
    )


def mount(app: FastAPI) -> None:
    """Add the page, its assets and the offline ``/docs`` to ``app`` (built with docs_url=None)."""
    app.include_router(router)
    app.include_router(api)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
