"""Forecast fields as files: CF-1.8 netCDF and PNG maps."""

from __future__ import annotations

import datetime as dt
import io
import threading
from typing import Any

import netCDF4
import numpy as np
import numpy.typing as npt

from service.grid import Grid

F32 = npt.NDArray[np.float32]
#: Colour bands on the Korean grades (good, moderate, bad, very bad) and beyond warning level.
BANDS = (0, 15.5, 35.5, 75.5, 150, 1000)
COLOURS = ("#3b82f6", "#22c55e", "#facc15", "#ef4444", "#7f1d1d")
LABELS = ("good 0-15", "moderate 16-35", "bad 36-75", "very bad 76-150", "very bad >150")
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


def to_png(hour_field: F32, grid: Grid, title: str, coast: npt.NDArray[np.floating]) -> bytes:
    """A map picture of one hour: grade-band colours, coastline, legend and title.

    Uses matplotlib's object API (a :class:`~matplotlib.figure.Figure` of its own, drawn by
    Agg), never pyplot: no global figure list grows, and two threads can draw at once.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    s = grid.spec
    extent = (s.xorig_m, s.xorig_m + s.ncols * s.cell_m, s.yorig_m, s.yorig_m + s.nrows * s.cell_m)
    fig = Figure(figsize=(5.2, 6.0), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    cmap = ListedColormap(COLOURS)
    ax.imshow(
        hour_field,
        origin="lower",
        extent=extent,
        cmap=cmap,
        norm=BoundaryNorm(BANDS, cmap.N),
        interpolation="nearest",
    )
    ax.plot(coast[:, 0], coast[:, 1], color="black", linewidth=0.6)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    ax.legend(
        handles=[
            Patch(color=c, label=f"{lab} ug/m3") for c, lab in zip(COLOURS, LABELS, strict=True)
        ],
        loc="lower right",
        fontsize=7,
        title="PM2.5 (Korean grades)",
        title_fontsize=7,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()
