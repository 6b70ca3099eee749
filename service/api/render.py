"""Forecast fields as files: CF-1.8 netCDF and PNG maps."""

from __future__ import annotations

import datetime as dt
import io
import threading
from functools import lru_cache
from typing import Any

import netCDF4
import numpy as np
import numpy.typing as npt

from service.features import PM25_GRADES
from service.grid import Grid

F32 = npt.NDArray[np.float32]
FloatArray = npt.NDArray[np.float64]
#: The Korean PM2.5 grades (ug/m3, whole numbers: 0-15, 16-35, 36-75, >= 76), as the page shows
#: them: colour, Korean name, English name. Cells are coloured by their rounded value.
GRADE_BOUNDS = (0.0, *(upper + 0.5 for upper, _, _ in PM25_GRADES[:-1]), 150.0)
GRADE_COLOURS = ("#2f80ed", "#27ae60", "#f2a93b", "#e04848")
GRADE_NAMES = tuple(
    (korean, name.replace("_", " ").capitalize()) for _, name, korean in PM25_GRADES
)
GRADE_ROMAN = ("joeum", "botong", "nappeum", "maeu nappeum")
GRADE_RANGES = ("0-15", "16-35", "36-75", ">= 76")
#: Fonts with Hangul, in order of preference; without one the grades are written in English
#: with their romanised Korean names (no tofu boxes).
HANGUL_FONTS = ("NanumGothic", "Noto Sans CJK KR", "Noto Sans KR", "Malgun Gothic",
                "Apple SD Gothic Neo", "AppleGothic", "UnDotum")  # fmt: skip
#: netCDF4 releases the GIL inside the HDF5 library, which is not thread-safe: two threads
#: writing files at once crash the process. One file at a time.
NETCDF_LOCK = threading.Lock()


def to_netcdf(
    field: F32, hours: list[int], valid: list[dt.datetime], grid: Grid, meta: dict[str, Any]
) -> bytes:
    """A CF-1.8 netCDF-4 file of the field, with the Lambert grid mapping and 2-D lat/lon."""
    with NETCDF_LOCK:
        return _netcdf_bytes(field, hours, valid, grid, meta)


def _netcdf_bytes(
    field: F32, hours: list[int], valid: list[dt.datetime], grid: Grid, meta: dict[str, Any]
) -> bytes:
    s = grid.spec
    ds = netCDF4.Dataset("forecast.nc", "w", format="NETCDF4", memory=1 << 20)
    ds.createDimension("time", len(hours))
    ds.createDimension("y", s.nrows)
    ds.createDimension("x", s.ncols)
    gm = ds.createVariable("lambert_conformal_conic", "i4")
    gm.grid_mapping_name = "lambert_conformal_conic"
    gm.standard_parallel = np.array([s.lat_1, s.lat_2])
    gm.longitude_of_central_meridian = s.lon_0
    gm.latitude_of_projection_origin = s.lat_0
    gm.false_easting = 0.0
    gm.false_northing = 0.0
    gm.earth_radius = s.earth_radius_m
    gm.crs_wkt = grid.crs.to_wkt()
    x = ds.createVariable("x", "f8", ("x",))
    x.standard_name, x.units, x.axis = "projection_x_coordinate", "m", "X"
    x[:] = grid.x_centres
    y = ds.createVariable("y", "f8", ("y",))
    y.standard_name, y.units, y.axis = "projection_y_coordinate", "m", "Y"
    y[:] = grid.y_centres
    t = ds.createVariable("time", "f8", ("time",))
    t.standard_name, t.axis, t.calendar = "time", "T", "standard"
    t.units = "hours since 1970-01-01 00:00:00 UTC"
    t[:] = [v.timestamp() / 3600.0 for v in valid]
    lon_c, lat_c = grid.centre_lonlat
    lat = ds.createVariable("lat", "f4", ("y", "x"), zlib=True)
    lat.standard_name, lat.units = "latitude", "degrees_north"
    lat[:] = lat_c
    lon = ds.createVariable("lon", "f4", ("y", "x"), zlib=True)
    lon.standard_name, lon.units = "longitude", "degrees_east"
    lon[:] = lon_c
    v = ds.createVariable("pm25", "f4", ("time", "y", "x"), zlib=True, complevel=1)
    v.standard_name = "mass_concentration_of_pm2p5_ambient_aerosol_particles_in_air"
    v.long_name = "PM2.5 forecast"
    v.units = "ug m-3"
    v.grid_mapping = "lambert_conformal_conic"
    v.coordinates = "lat lon"
    v[:] = field
    ds.Conventions = "CF-1.8"
    ds.title = f"PM2.5 forecast for {meta.get('target_date')} (KST)"
    ds.institution = "pm25-forecast"
    for key, value in meta.items():
        if value is None:
            continue
        ds.setncattr(key, int(value) if isinstance(value, bool) else value)
    return bytes(ds.close())


@lru_cache(maxsize=1)
def hangul_font() -> str | None:
    """The first installed font that can write Korean, or ``None``."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in HANGUL_FONTS if name in installed), None)


def _graticule(grid: Grid) -> tuple[list[tuple[int, FloatArray, FloatArray]], ...]:
    """Whole-degree parallels and meridians over the grid, in projected metres."""
    lon_c, lat_c = grid.centre_lonlat
    lats = range(int(np.floor(lat_c.min())), int(np.ceil(lat_c.max())) + 1)
    lons = range(int(np.floor(lon_c.min())), int(np.ceil(lon_c.max())) + 1)
    along_lon = np.linspace(lon_c.min() - 1, lon_c.max() + 1, 80)
    along_lat = np.linspace(lat_c.min() - 1, lat_c.max() + 1, 80)
    parallels = [(v, *grid.lonlat_to_xy(along_lon, np.full_like(along_lon, v))) for v in lats]
    meridians = [(v, *grid.lonlat_to_xy(np.full_like(along_lat, v), along_lat)) for v in lons]
    return parallels, meridians


def _crossing(a: FloatArray, b: FloatArray, at: float) -> float | None:
    """Where the polyline (a, b) crosses a == at, as b (linear between points)."""
    for i in range(1, len(a)):
        if (a[i - 1] - at) * (a[i] - at) <= 0 and a[i] != a[i - 1]:
            f = (at - a[i - 1]) / (a[i] - a[i - 1])
            return float(b[i - 1] + f * (b[i] - b[i - 1]))
    return None


#: The PNG map's width and left margin (inches), the title's size (points) and the height of
#: one more title line (inches).
PNG_WIDTH_IN = 9.0
PNG_LEFT_IN = 0.7
TITLE_POINTS = 11
TITLE_LINE_IN = 0.2


def wrap_title(title: str, max_width_px: float, fontsize: float = TITLE_POINTS) -> str:
    """``title`` with its lines broken so that none is wider than ``max_width_px`` at 100 dpi.

    A line breaks at its `` · `` separators first, then at the ``+`` of a long model name
    (``convlstm-case3+validation=seasonal+...``), and only then anywhere; nothing is dropped.
    """
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    measure = TextToPath()
    props = FontProperties(size=fontsize)

    def fits(text: str) -> bool:
        width, _, _ = measure.get_text_width_height_descent(text, props, ismath=False)
        return bool(width * 100 / 72 <= max_width_px)  # points to pixels at 100 dpi

    def pack(pieces: list[str], joiner: str) -> list[str]:
        lines: list[str] = []
        for piece in pieces:
            if lines and fits(lines[-1] + joiner + piece):
                lines[-1] += joiner + piece
            else:
                lines.append(piece)
        return lines

    out: list[str] = []
    for line in title.splitlines():
        for part in pack(line.split(" · "), " · "):
            if fits(part):
                out.append(part)
                continue
            first, *rest = part.split("+")
            for chunk in pack([first, *(f"+{p}" for p in rest)], ""):  # "+" starts a line
                while not fits(chunk):  # no separator left: cut where it still fits
                    cut = max(k for k in range(1, len(chunk) + 1) if fits(chunk[:k]) or k == 1)
                    out.append(chunk[:cut])
                    chunk = chunk[cut:]
                out.append(chunk)
    return "\n".join(out)


def to_png(
    field2d: F32,
    grid: Grid,
    coast: npt.NDArray[np.floating],
    *,
    title: str,
    synthetic: bool,
) -> bytes:
    """A map of one hour (or the daily mean) for people, 900 pixels wide (:func:`png_figure`)."""
    fig = png_figure(field2d, grid, coast, title=title, synthetic=synthetic)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def png_figure(
    field2d: F32,
    grid: Grid,
    coast: npt.NDArray[np.floating],
    *,
    title: str,
    synthetic: bool,
) -> Any:
    """The map of :func:`to_png` as a matplotlib ``Figure``.

    Cells coloured by the four Korean grades, a colour bar in ug/m3 with the grade bounds
    and names beside the map (never over it), the coastline, a latitude/longitude graticule,
    ``title`` (date, hour in KST, run and model; wrapped by :func:`wrap_title` to the
    picture's width, which grows taller for more lines) and, when ``synthetic``,
    "SYNTHETIC" across the whole picture. Drawn with matplotlib's object API (no pyplot, no
    global state), so it is safe in any thread.
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.figure import Figure

    s = grid.spec
    x0, x1 = s.xorig_m, s.xorig_m + s.ncols * s.cell_m
    y0, y1 = s.yorig_m, s.yorig_m + s.nrows * s.cell_m
    font = hangul_font()
    width = PNG_WIDTH_IN
    title = wrap_title(title, (width - PNG_LEFT_IN - 0.15) * 100)
    extra_lines = max(0, len(title.splitlines()) - 2)  # two fit above the map as it was
    # The map's axes have the grid's own aspect (0.1 inch a cell), so no space is wasted.
    height = 0.1 * s.nrows + 1.6 + TITLE_LINE_IN * extra_lines
    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.add_axes((0.7 / width, 0.55 / height, 0.1 * s.ncols / width, 0.1 * s.nrows / height))
    left = (0.7 + 0.1 * s.ncols + 0.75) / width
    cax = fig.add_axes((left, 0.2, 0.3 / width, 0.6))
    cmap = ListedColormap(GRADE_COLOURS).with_extremes(over=GRADE_COLOURS[-1])
    norm = BoundaryNorm(GRADE_BOUNDS, cmap.N)
    image = ax.imshow(
        np.asarray(field2d, float),
        origin="lower",
        extent=(x0, x1, y0, y1),
        cmap=cmap,
        norm=norm,
        interpolation="nearest",
    )
    parallels, meridians = _graticule(grid)
    yticks, xticks = [], []
    for value, x, y in parallels:
        ax.plot(x, y, color="#10233f", alpha=0.3, linewidth=0.6)
        at = _crossing(x, y, x0)
        if at is not None and y0 < at < y1:
            yticks.append((at, f"{value}°N"))
    for value, x, y in meridians:
        ax.plot(x, y, color="#10233f", alpha=0.3, linewidth=0.6)
        at = _crossing(y, x, y0)
        if at is not None and x0 < at < x1:
            xticks.append((at, f"{value}°E"))
    ax.plot(coast[:, 0], coast[:, 1], color="#1b2230", linewidth=0.7)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xticks([t for t, _ in xticks], [label for _, label in xticks], fontsize=9)
    ax.set_yticks([t for t, _ in yticks], [label for _, label in yticks], fontsize=9)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=TITLE_POINTS, loc="left", pad=10)

    bar = fig.colorbar(image, cax=cax, extend="max", spacing="uniform")
    bar.set_ticks(GRADE_BOUNDS, labels=["0", "15 | 16", "35 | 36", "75 | 76", "150"])
    bar.ax.tick_params(labelsize=9)
    bar.ax.yaxis.set_ticks_position("left")
    bar.ax.set_title("PM2.5\nug/m3", fontsize=10, pad=14)
    for k, (korean, english) in enumerate(GRADE_NAMES):
        name = f"{korean}\n{english}" if font else f"{english}\n({GRADE_ROMAN[k]})"
        bar.ax.text(
            1.4,
            (k + 0.5) / 4,
            f"{name}\n{GRADE_RANGES[k]}",
            transform=bar.ax.transAxes,
            ha="left",
            va="center",
            fontsize=9,
            linespacing=1.35,
            family=font or "sans-serif",
        )
    fig.text(
        0.7 / width,
        0.012,
        "Korean PM2.5 grades on whole ug/m3; hours in Korea Standard Time (KST, UTC+9).",
        fontsize=8,
        color="#5b6475",
    )
    if synthetic:
        fig.text(
            0.5,
            0.5,
            "SYNTHETIC",
            fontsize=96,
            color="#b00020",
            alpha=0.22,
            rotation=35,
            ha="center",
            va="center",
            weight="bold",
        )
    return fig
