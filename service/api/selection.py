"""Pure selection functions on forecast fields: points, stations, grades, advisories.

Kept apart from the HTTP routes so they can be tested and reused without a server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.features import PM25_GRADES
from service.grid import Grid

F32 = npt.NDArray[np.float32]

ADVISORY = 75.0  # 주의보: hourly mean >= 75 for 2 consecutive hours
WARNING = 150.0  # 경보: >= 150 for 2 consecutive hours


class OutsideGridError(ValueError):
    """A point outside the service grid."""


def grade(daily_mean: float) -> dict[str, str]:
    """The Korean grade of a daily mean (rounded to a whole ug/m3, as the standard is)."""
    value = round(daily_mean)
    for upper, name, korean in PM25_GRADES:
        if value <= upper:
            return {"grade": name, "grade_ko": korean}
    raise AssertionError("unreachable")


def alert_hours(values: F32, threshold: float) -> list[int]:
    """Hours (0..23) that complete a run of two consecutive hours at or above ``threshold``."""
    over = np.asarray(values) >= threshold
    return [h for h in range(1, len(over)) if over[h] and over[h - 1]]


@dataclass(frozen=True)
class Cell:
    row: int
    col: int
    weight: float
    lat: float
    lon: float


@dataclass(frozen=True)
class PointSelection:
    """Where a point falls and how its value is taken from the field."""

    lat: float
    lon: float
    method: str
    cells: tuple[Cell, ...]
    nearest: Cell
    distance_km: float

    def values(self, field: F32) -> F32:
        out = np.zeros(field.shape[0], np.float32)
        for c in self.cells:
            out += np.float32(c.weight) * field[:, c.row, c.col]
        return out


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6370.0 * math.asin(math.sqrt(a))


def select_point(grid: Grid, lat: float, lon: float, method: str = "bilinear") -> PointSelection:
    """Locate a point for ``nearest`` or ``bilinear`` lookup.

    Bilinear weights use the four surrounding cell centres in projected coordinates; between
    the outermost centres and the grid's edge the nearest edge values are used.

    Raises
    ------
    OutsideGridError
        The point lies outside the grid.
    """
    if method not in ("bilinear", "nearest"):
        raise ValueError(f"method must be 'bilinear' or 'nearest', not {method!r}")
    fr, fc = (float(v) for v in grid.latlon_to_rowcol(lat, lon))  # project once
    cell = grid.cell_at(fr, fc)
    if cell is None:
        raise OutsideGridError(f"({lat}, {lon}) is outside the grid")
    lon_c, lat_c = grid.centre_lonlat
    nrows, ncols = grid.shape

    def mk(r: int, c: int, w: float) -> Cell:
        return Cell(r, c, w, round(float(lat_c[r, c]), 5), round(float(lon_c[r, c]), 5))

    nearest = mk(cell[0], cell[1], 1.0)
    dist = _distance_km(lat, lon, nearest.lat, nearest.lon)
    if method == "nearest":
        return PointSelection(lat, lon, method, (nearest,), nearest, dist)
    fr = min(max(fr, 0.0), nrows - 1.0)
    fc = min(max(fc, 0.0), ncols - 1.0)
    r0, c0 = min(int(fr), nrows - 2), min(int(fc), ncols - 2)
    wy, wx = fr - r0, fc - c0
    weights = (
        (r0, c0, (1 - wy) * (1 - wx)),
        (r0, c0 + 1, (1 - wy) * wx),
        (r0 + 1, c0, wy * (1 - wx)),
        (r0 + 1, c0 + 1, wy * wx),
    )
    cells = tuple(mk(r, c, round(w, 6)) for r, c, w in weights if w > 1e-9)
    return PointSelection(lat, lon, method, cells, nearest, dist)


def summarize(values: F32) -> dict[str, object]:
    """Daily mean, grade and alert hours of 24 hourly values."""
    mean = float(np.mean(values))
    return {
        "daily_mean": round(mean, 2),
        **grade(mean),
        "advisory_hours": alert_hours(values, ADVISORY),
        "warning_hours": alert_hours(values, WARNING),
    }
