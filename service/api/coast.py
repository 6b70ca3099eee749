"""The coastline for map pictures, derived once from the ``global-land-mask`` package.

The package's global mask takes about 1 GB in memory, far too much for the API process, so
the coastline of the service domain is traced once (``python -m service.api.coast``) into a
small file shipped with the service (``service/data/coastline.npz``): polylines in the
service grid's projected metres, NaN-separated.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from service.grid import Grid
from service.settings import GridSpec

COAST_FILE = Path(__file__).resolve().parents[1] / "data" / "coastline.npz"
RESOLUTION_M = 1000.0


def trace_coastline(grid: Grid, margin_m: float = 20_000.0) -> npt.NDArray[np.float64]:
    """Trace the land/sea boundary over the grid from the global land mask; ``(n, 2)`` x/y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from global_land_mask import globe

    s = grid.spec
    xs = np.arange(s.xorig_m - margin_m, s.xorig_m + s.ncols * s.cell_m + margin_m, RESOLUTION_M)
    ys = np.arange(s.yorig_m - margin_m, s.yorig_m + s.nrows * s.cell_m + margin_m, RESOLUTION_M)
    xx, yy = np.meshgrid(xs, ys)
    lon, lat = grid.xy_to_lonlat(xx, yy)
    land = globe.is_land(lat, lon).astype(float)
    fig, ax = plt.subplots()
    cs = ax.contour(xs, ys, land, levels=[0.5])
    parts = []
    for path in cs.get_paths():
        for poly in path.to_polygons(closed_only=False):
            if np.shape(poly)[0] >= 8:  # drop specks: rocks smaller than a few km
                parts.append(poly)
                parts.append(np.array([[np.nan, np.nan]]))
    plt.close(fig)
    return np.concatenate(parts) if parts else np.empty((0, 2))


@lru_cache(maxsize=1)
def load_coastline(path: Path = COAST_FILE) -> npt.NDArray[np.float64]:
    """The shipped coastline polylines, ``(n, 2)`` projected x/y with NaN separators."""
    with np.load(path) as data:
        return np.asarray(data["xy"])


if __name__ == "__main__":
    xy = trace_coastline(Grid(GridSpec()))
    np.savez_compressed(COAST_FILE, xy=xy.astype(np.float32))
    print(f"wrote {COAST_FILE} ({len(xy)} points)")
