"""The model domains the twin writes on: the CMAQ parent grid and a larger WRF grid.

Both share the service grid's Lambert projection. The CMAQ grid is the 67 x 82 Korean 9 km
grid the service grid is cut from (4 columns and 7 rows off each side, PRODUCT.md); the WRF
grid adds a further margin, as a WRF domain is larger than the CMAQ domain it drives.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from service.formats.ioapi import IoapiGrid
from service.grid import Grid
from service.settings import GridSpec

PARENT_COL_MARGIN = 4
PARENT_ROW_MARGIN = 7


def parent_spec(
    service: GridSpec,
    col_margin: int = PARENT_COL_MARGIN,
    row_margin: int = PARENT_ROW_MARGIN,
    name: str = "KNU_09_01",
) -> GridSpec:
    """The grid ``service`` is cut from, wider by the given number of cells on each side."""
    return service.model_copy(
        update={
            "name": name,
            "xorig_m": service.xorig_m - col_margin * service.cell_m,
            "yorig_m": service.yorig_m - row_margin * service.cell_m,
            "ncols": service.ncols + 2 * col_margin,
            "nrows": service.nrows + 2 * row_margin,
        }
    )


def ioapi_grid(spec: GridSpec) -> IoapiGrid:
    """The I/O API header fields of a grid."""
    return IoapiGrid(
        gdnam=spec.name,
        p_alp=spec.lat_1,
        p_bet=spec.lat_2,
        p_gam=spec.lon_0,
        xcent=spec.lon_0,
        ycent=spec.lat_0,
        xorig=spec.xorig_m,
        yorig=spec.yorig_m,
        xcell=spec.cell_m,
        ycell=spec.cell_m,
        ncols=spec.ncols,
        nrows=spec.nrows,
    )


@dataclass(frozen=True)
class WrfDomain:
    """A Lambert WRF mass grid on the service projection, and its wrfout attributes."""

    spec: GridSpec

    @cached_property
    def grid(self) -> Grid:
        """The domain as a :class:`Grid`, built once so its projections are cached too."""
        return Grid(self.spec)

    def lat_lon(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """XLAT and XLONG of the mass points, ``(south_north, west_east)``."""
        lon, lat = self.grid.centre_lonlat
        return lat, lon

    def rotation(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """SINALPHA and COSALPHA consistent with the Lambert cone formula of FORMATS.md."""
        from service.formats.wrfout import cone_factor

        s = self.spec
        _, lon = self.lat_lon()
        cone = cone_factor(s.lat_1, s.lat_2)
        alpha = np.radians(((lon - s.lon_0 + 180.0) % 360.0 - 180.0) * cone)
        return -np.sin(alpha), np.cos(alpha)

    def attrs(self, start: str) -> dict[str, object]:
        """Global attributes of a wrfout file of this domain; ``start`` is a WRF time string."""
        s = self.spec
        cx = s.xorig_m + s.ncols * s.cell_m / 2
        cy = s.yorig_m + s.nrows * s.cell_m / 2
        cen_lon, cen_lat = self.grid.xy_to_lonlat(cx, cy)
        return {
            "TITLE": " OUTPUT FROM WRF V4.2.1 MODEL (SYNTHETIC: pm25-forecast twin)",
            "START_DATE": start,
            "SIMULATION_START_DATE": start,
            "WEST-EAST_GRID_DIMENSION": s.ncols + 1,
            "SOUTH-NORTH_GRID_DIMENSION": s.nrows + 1,
            "BOTTOM-TOP_GRID_DIMENSION": 33,
            "DX": float(s.cell_m),
            "DY": float(s.cell_m),
            "GRID_ID": 1,
            "PARENT_ID": 0,
            "I_PARENT_START": 1,
            "J_PARENT_START": 1,
            "CEN_LAT": float(cen_lat),
            "CEN_LON": float(cen_lon),
            "TRUELAT1": float(s.lat_1),
            "TRUELAT2": float(s.lat_2),
            "MOAD_CEN_LAT": float(s.lat_0),
            "STAND_LON": float(s.lon_0),
            "POLE_LAT": 90.0,
            "POLE_LON": 0.0,
            "MAP_PROJ": 1,
            "MAP_PROJ_CHAR": "Lambert Conformal",
            "BUCKET_MM": -1.0,
            "BUCKET_J": -1.0,
        }


def wrf_domain(service: GridSpec, margin: int = 3) -> WrfDomain:
    """A WRF domain ``margin`` cells wider on each side than the CMAQ parent grid."""
    parent = parent_spec(service)
    return WrfDomain(parent_spec(parent, margin, margin, name="WRF_D01"))
