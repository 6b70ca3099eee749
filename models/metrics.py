"""The paper's evaluation metrics (PAPER.md, "Evaluation"), on arrays ``(days, 24, rows, cols)``."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

F = npt.NDArray[np.floating]


def rmse_by_hour(pred: F, truth: F) -> npt.NDArray[np.float64]:
    """RMSE of each forecast hour over all days and cells."""
    err = (np.asarray(pred, np.float64) - truth) ** 2
    return np.sqrt(err.mean(axis=(0, 2, 3)))


def spatial_rmse_by_hour(pred: F, truth: F) -> npt.NDArray[np.float64]:
    """Spatial RMSE of each hour: RMSE over the cells at each time, averaged over the days."""
    err = (np.asarray(pred, np.float64) - truth) ** 2
    return np.sqrt(err.mean(axis=(2, 3))).mean(axis=0)


def distribution(values: F) -> dict[str, float]:
    """min, max, mean, std and var, as in the paper's Table 4."""
    v = np.asarray(values, np.float64)
    return {
        "min": float(v.min()),
        "max": float(v.max()),
        "mean": float(v.mean()),
        "std": float(v.std()),
        "var": float(v.var()),
    }


def score(pred: F, truth: F, baseline: F | None = None) -> dict[str, Any]:
    """Every metric of the paper for one model (and its improvement over ``baseline``)."""
    r = rmse_by_hour(pred, truth)
    s = spatial_rmse_by_hour(pred, truth)
    out: dict[str, Any] = {
        "rmse_by_hour": r.round(4).tolist(),
        "spatial_rmse_by_hour": s.round(4).tolist(),
        "rmse_mean": float(r.mean()),
        "spatial_rmse_mean": float(s.mean()),
        "distribution": distribution(pred),
    }
    if baseline is not None:
        rb = rmse_by_hour(baseline, truth)
        sb = spatial_rmse_by_hour(baseline, truth)
        out["improvement_rmse"] = float((rb - r).mean())
        out["improvement_spatial_rmse"] = float((sb - s).mean())
        out["rmse_reduction_percent"] = float(100 * (1 - r.mean() / rb.mean()))
    return out
