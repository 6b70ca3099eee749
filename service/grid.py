"""The service grid: Lambert conformal projection, lat/lon <-> x/y <-> fractional row/col.

Every file is mapped onto this grid and every HTTP lookup starts from it. Index
conventions follow the Models-3 I/O API: ``XORIG``/``YORIG`` are the lower-left *corner*,
row 0 is the southern edge, and the centre of cell ``(row j, col i)`` is
``(XORIG + (i + 0.5) * XCELL, YORIG + (j + 0.5) * YCELL)``. Fractional indices put cell
centres on integers, so the cell holding a point is ``floor(frac + 0.5)``.

Latitudes and longitudes are on the model sphere (radius 6,370,000 m), as WRF and CMAQ use
them; no datum shift to WGS84 is applied (it would move points by less than 20 m here).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
from pyproj import CRS, Transformer

from service.settings import GridSpec

FloatArray = npt.NDArray[np.float64]


def lambert_proj4(lat_1: float, lat_2: float, lon_0: float, lat_0: float, radius: float) -> str:
    """Return the PROJ string of a Lambert conformal conic projection on a sphere."""
    return (
        f"+proj=lcc +lat_1={lat_1:.10g} +lat_2={lat_2:.10g} +lon_0={lon_0:.10g} "
        f"+lat_0={lat_0:.10g} +R={radius:.10g} +x_0=0 +y_0=0 +units=m +no_defs"
    )


@dataclass(frozen=True)
class Grid:
    """A regular grid on a Lambert conformal conic projection.

    Parameters
    ----------
    spec
        The grid's configuration (projection, corner, cell size, shape).

    Examples
    --------
    >>> from service.settings import GridSpec
    >>> grid = Grid(GridSpec())
    >>> grid.cell_of(37.5665, 126.978)
    (52, 25)
    """

    spec: GridSpec

    @property
    def shape(self) -> tuple[int, int]:
        """``(nrows, ncols)``."""
        return (self.spec.nrows, self.spec.ncols)

    @cached_property
    def proj4(self) -> str:
        """The PROJ string of the grid's projection."""
        s = self.spec
        return lambert_proj4(s.lat_1, s.lat_2, s.lon_0, s.lat_0, s.earth_radius_m)

    @cached_property
    def crs(self) -> CRS:
        """The projected coordinate reference system."""
        return CRS.from_proj4(self.proj4)

    @cached_property
    def _to_xy(self) -> Transformer:
        return Transformer.from_crs(self.crs.geodetic_crs, self.crs, always_xy=True)

    @cached_property
    def _to_lonlat(self) -> Transformer:
        return Transformer.from_crs(self.crs, self.crs.geodetic_crs, always_xy=True)

    @cached_property
    def x_centres(self) -> FloatArray:
        """Projected x of the column centres, metres, west to east."""
        s = self.spec
        return np.asarray(s.xorig_m + (np.arange(s.ncols) + 0.5) * s.cell_m, np.float64)

    @cached_property
    def y_centres(self) -> FloatArray:
        """Projected y of the row centres, metres, south to north."""
        s = self.spec
        return np.asarray(s.yorig_m + (np.arange(s.nrows) + 0.5) * s.cell_m, np.float64)

    @cached_property
    def centre_lonlat(self) -> tuple[FloatArray, FloatArray]:
        """Longitude and latitude of every cell centre, each ``(nrows, ncols)``."""
        xx, yy = np.meshgrid(self.x_centres, self.y_centres)
        lon, lat = self.xy_to_lonlat(xx, yy)
        lon.setflags(write=False)
        lat.setflags(write=False)
        return lon, lat

    def lonlat_to_xy(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Project longitude/latitude (degrees) to grid x/y (metres)."""
        x, y = self._to_xy.transform(np.asarray(lon, float), np.asarray(lat, float))
        return np.asarray(x, np.float64), np.asarray(y, np.float64)

    def xy_to_lonlat(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Unproject grid x/y (metres) to longitude/latitude (degrees)."""
        lon, lat = self._to_lonlat.transform(np.asarray(x, float), np.asarray(y, float))
        return np.asarray(lon, float), np.asarray(lat, float)

    def xy_to_rowcol(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Fractional ``(row, col)`` of projected points; cell centres are integers."""
        s = self.spec
        col = (np.asarray(x, float) - s.xorig_m) / s.cell_m - 0.5
        row = (np.asarray(y, float) - s.yorig_m) / s.cell_m - 0.5
        return row, col

    def rowcol_to_xy(self, row: npt.ArrayLike, col: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Projected x/y of fractional ``(row, col)``."""
        s = self.spec
        x = s.xorig_m + (np.asarray(col, float) + 0.5) * s.cell_m
        y = s.yorig_m + (np.asarray(row, float) + 0.5) * s.cell_m
        return x, y

    def latlon_to_rowcol(
        self, lat: npt.ArrayLike, lon: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        """Fractional ``(row, col)`` of latitude/longitude points."""
        return self.xy_to_rowcol(*self.lonlat_to_xy(lon, lat))

    def rowcol_to_latlon(
        self, row: npt.ArrayLike, col: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        """Latitude/longitude of fractional ``(row, col)``."""
        lon, lat = self.xy_to_lonlat(*self.rowcol_to_xy(row, col))
        return lat, lon

    def contains(self, lat: float, lon: float) -> bool:
        """Whether a point lies inside the grid's outer edges."""
        return self.cell_of(lat, lon) is not None

    def cell_of(self, lat: float, lon: float) -> tuple[int, int] | None:
        """The ``(row, col)`` of the cell holding a point, or ``None`` outside the grid."""
        return self.cell_at(*self.latlon_to_rowcol(lat, lon))

    def cell_at(self, row: npt.ArrayLike, col: npt.ArrayLike) -> tuple[int, int] | None:
        """The cell holding fractional ``(row, col)``, or ``None`` outside the grid."""
        r, c = float(np.asarray(row)), float(np.asarray(col))
        nrows, ncols = self.shape
        if not (-0.5 <= r < nrows - 0.5 and -0.5 <= c < ncols - 0.5):
            return None
        return int(np.floor(r + 0.5)), int(np.floor(c + 0.5))

    def describe(self) -> dict[str, object]:
        """A plain description of the grid for metadata and API responses."""
        s = self.spec
        return {
            "name": s.name,
            "projection": "lambert_conformal_conic",
            "proj4": self.proj4,
            "standard_parallels": [s.lat_1, s.lat_2],
            "central_meridian": s.lon_0,
            "origin_latitude": s.lat_0,
            "earth_radius_m": s.earth_radius_m,
            "xorig_m": s.xorig_m,
            "yorig_m": s.yorig_m,
            "cell_size_m": s.cell_m,
            "ncols": s.ncols,
            "nrows": s.nrows,
            "row_order": "south_to_north",
        }
