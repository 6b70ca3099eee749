"""The forecast's own check: what a field must be before anything is stored."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from service.grid import Grid
from service.timeaxis import HOURS

F32 = npt.NDArray[np.float32]

#: Plausible range of a published PM2.5 forecast, ug/m3. The highest hourly PM2.5 measured in
#: Korea is about 500 ug/m3 (dust and haze episodes); CMAQ's own peaks, which the fallback
#: publishes, stay below about 700 on the worst days. A forecast above 1,000 ug/m3 is a broken
#: model or a unit error, not a bad day; below 0 is impossible. The inputs' cap (2,000 in
#: :mod:`service.features`) is wider because it only screens files for corruption.
FORECAST_PM25_RANGE = (0.0, 1000.0)


class ForecastValidationError(Exception):
    """The model's output is not a usable forecast (shape, NaN, range)."""


def validate_forecast(pm25: F32, grid: Grid) -> dict[str, Any]:
    """Check a forecast field before it is stored; return its statistics.

    Parameters
    ----------
    pm25
        ``(24, nrows, ncols)`` PM2.5 in ug/m3.
    grid
        The service grid the field must cover.

    Raises
    ------
    ForecastValidationError
        Wrong shape, NaN or infinite values, or values outside :data:`FORECAST_PM25_RANGE`.
    """
    expected = (HOURS, *grid.shape)
    if pm25.shape != expected:
        raise ForecastValidationError(f"forecast shape {pm25.shape}, expected {expected}")
    if not np.isfinite(pm25).all():
        bad = int((~np.isfinite(pm25)).sum())
        raise ForecastValidationError(f"forecast has {bad} NaN or infinite values")
    lo, hi = float(pm25.min()), float(pm25.max())
    low, high = FORECAST_PM25_RANGE
    if lo < low or hi > high:
        raise ForecastValidationError(
            f"forecast ranges {lo:.3g}..{hi:.3g} ug/m3, outside the plausible {low:g}..{high:g}"
        )
    hourly = pm25.reshape(HOURS, -1)
    return {
        "min": lo,
        "max": hi,
        "mean": float(pm25.mean()),
        "std": float(pm25.std()),
        "p99": float(np.percentile(pm25, 99)),
        "hourly_mean": [round(float(v), 3) for v in hourly.mean(axis=1)],
        "cells_over_75": int((pm25.max(axis=0) >= 75).sum()),
    }
