"""The scores of one forecast day against the analysis: pure numpy on ``(24, rows, cols)`` arrays.

Definitions follow the paper (shared/docs/PAPER.md, "Evaluation") and the Korean grade
standard. Everything a period needs is kept per day in sums that aggregate exactly (MSE per
hour, contingency counts, the squared error over peak cell-hours), so a period's RMSE is the
square root of its mean MSE and never a mean of daily RMSEs; the paper's spatial RMSE is the
one score defined as a mean of per-time RMSEs.

>>> import numpy as np
>>> truth = np.full((24, 2, 2), 20.0)
>>> s = score_source(truth + 3.0, truth)
>>> round(s["cells"]["rmse"], 6), round(s["cells"]["bias"], 6), s["grades"]["accuracy"]
(3.0, 3.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from service.features import PM25_GRADES

F = npt.NDArray[np.floating[Any]]
Cells = tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]

SOURCES = ("model", "cmaq", "persistence")
"""The forecasts verified each day: the published one, raw CMAQ of the same run, persistence."""
GRADE_UPPER = tuple(upper for upper, _, _ in PM25_GRADES[:-1])
"""Upper bounds (ug/m3, inclusive) of the Korean grades good, moderate and bad of a daily mean
rounded to a whole ug/m3; 76 and above is very bad (:data:`service.features.PM25_GRADES`)."""
GRADE_NAMES = tuple(name for _, name, _ in PM25_GRADES)
EVENTS = {"bad_or_worse": 2, "very_bad": 3}
"""Yes/no events scored with POD, FAR and CSI: the daily-mean grade is at least this index
(bad or worse: >= 36 ug/m3; very bad: >= 76 ug/m3)."""
PEAK_THRESHOLD = 75.0
"""Cell-hours whose analysis is at least this (ug/m3) are the peak hours that matter most."""


def grade_index(daily_mean: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """The Korean grade (0 good, 1 moderate, 2 bad, 3 very bad) of daily means.

    >>> grade_index([15.4, 15.6, 35.0, 36.0, 75.4, 76.0]).tolist()
    [0, 1, 1, 2, 2, 3]
    """
    value = np.round(np.asarray(daily_mean, np.float64))  # half to even, like Python's round
    return np.searchsorted(np.asarray(GRADE_UPPER, np.float64), value, side="left")


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def contingency(forecast: npt.ArrayLike, observed: npt.ArrayLike) -> dict[str, Any]:
    """Counts and POD, FAR, CSI of a yes/no event (``None`` where undefined: nothing to count).

    >>> contingency([True, True, False, False], [True, False, True, False])["csi"]
    0.3333333333333333
    """
    f = np.asarray(forecast, bool)
    o = np.asarray(observed, bool)
    hits = int((f & o).sum())
    misses = int((~f & o).sum())
    false_alarms = int((f & ~o).sum())
    return event_scores(hits, misses, false_alarms, int((~f & ~o).sum()))


def event_scores(
    hits: int, misses: int, false_alarms: int, correct_negatives: int
) -> dict[str, Any]:
    """POD, FAR and CSI from the four counts of a 2 x 2 table, with the counts."""
    return {
        "hits": hits,
        "misses": misses,
        "false_alarms": false_alarms,
        "correct_negatives": correct_negatives,
        "pod": _ratio(hits, hits + misses),
        "far": _ratio(false_alarms, hits + false_alarms),
        "csi": _ratio(hits, hits + misses + false_alarms),
    }


def grade_scores(table: npt.ArrayLike) -> dict[str, Any]:
    """Accuracy and the two events' scores from a 4 x 4 table (rows: analysis grade, columns:
    forecast grade); periods add their days' tables and call this again."""
    t = np.asarray(table, np.int64)
    out: dict[str, Any] = {
        "table": t.tolist(),
        "accuracy": _ratio(float(np.trace(t)), float(t.sum())),
    }
    for name, k in EVENTS.items():
        out[name] = event_scores(
            int(t[k:, k:].sum()), int(t[k:, :k].sum()), int(t[:k, k:].sum()), int(t[:k, :k].sum())
        )
    return out


def _pearson(f: F, a: F) -> float | None:
    fd, ad = f - f.mean(), a - a.mean()
    den = math.sqrt(float((fd * fd).sum()) * float((ad * ad).sum()))
    return None if den == 0 else float((fd * ad).sum()) / den


def _basic(f: F, a: F) -> dict[str, Any]:
    """RMSE by hour (rows of ``f``/``a`` are hours), RMSE, bias, MAE and r over everything."""
    err = f - a
    mse_by_hour = (err * err).reshape(err.shape[0], -1).mean(axis=1)
    return {
        "n": int(err.size),
        "rmse": math.sqrt(float(mse_by_hour.mean())),
        "bias": float(err.mean()),
        "mae": float(np.abs(err).mean()),
        "r": _pearson(f.ravel(), a.ravel()),
        "rmse_by_hour": np.sqrt(mse_by_hour).tolist(),
        "mse_by_hour": mse_by_hour.tolist(),
    }


def score_source(forecast: F, truth: F, stations: Cells | None = None) -> dict[str, Any]:
    """Every score of one forecast of one day against the analysis.

    Parameters
    ----------
    forecast, truth
        ``(24, rows, cols)``: the forecast and the analysis of the same day, hour by hour.
    stations
        Row and column indices of the stations' cells (one entry per station, so cells with
        several stations count several times), or ``None`` to leave the station scores out.

    Returns
    -------
    dict
        ``cells`` (all cell-hours: ``rmse_by_hour``, which for one day is also the paper's
        spatial RMSE of each hour, ``mse_by_hour``, ``rmse``, ``bias``, ``mae``, Pearson
        ``r``, ``n``), ``stations`` (the same at the stations' cells), ``grades`` (the 4 x 4
        table of daily-mean grades, accuracy, POD/FAR/CSI of bad-or-worse and very bad) and
        ``peak`` (RMSE over cell-hours whose analysis is >= 75 ug/m3, with ``n`` and ``sse``).
    """
    f = np.asarray(forecast, np.float64)
    a = np.asarray(truth, np.float64)
    if f.shape != a.shape or f.ndim != 3:
        raise ValueError(
            f"forecast {f.shape} and analysis {a.shape} must be equal (hours, rows, cols)"
        )
    cells = _basic(f, a)
    cells["spatial_rmse_by_hour"] = cells["rmse_by_hour"]
    out: dict[str, Any] = {"cells": cells}
    if stations is not None:
        rows, cols = stations
        out["stations"] = _basic(f[:, rows, cols], a[:, rows, cols])
    table = np.zeros((4, 4), np.int64)
    np.add.at(table, (grade_index(a.mean(axis=0)).ravel(), grade_index(f.mean(axis=0)).ravel()), 1)
    out["grades"] = grade_scores(table)
    peak = a >= PEAK_THRESHOLD
    out["peak"] = peak_scores(int(peak.sum()), float(((f - a)[peak] ** 2).sum()))
    return out


def peak_scores(n: int, sse: float) -> dict[str, Any]:
    """The RMSE over the ``n`` peak cell-hours whose squared errors sum to ``sse``."""
    return {
        "threshold": PEAK_THRESHOLD,
        "n": n,
        "sse": sse,
        "rmse": math.sqrt(sse / n) if n else None,
    }


def skill(mse: float, mse_reference: float) -> float | None:
    """The MSE skill score ``1 - MSE / MSE_ref`` (``None`` when the reference is perfect).

    >>> skill(1.0, 4.0)
    0.75
    """
    return None if mse_reference == 0 else 1.0 - mse / mse_reference


def mse_of(scores: dict[str, Any]) -> float:
    """The day's MSE over all cell-hours, from :func:`score_source`'s result."""
    return float(np.mean(scores["cells"]["mse_by_hour"]))


def score_day(
    truth: F,
    forecasts: dict[str, F | None],
    stations: Cells | None = None,
) -> dict[str, dict[str, Any]]:
    """Score each available forecast of one day; the model also gets its skill scores.

    Parameters
    ----------
    truth
        The day's analysis ``(24, rows, cols)``.
    forecasts
        ``model``, ``cmaq`` and ``persistence`` fields (a missing one is ``None`` or absent).
    stations
        The stations' cells (see :func:`score_source`).

    Returns
    -------
    dict
        Source -> scores; ``model`` has ``skill`` ``{"vs_cmaq", "vs_persistence"}``.
    """
    out = {
        name: score_source(field, truth, stations)
        for name, field in forecasts.items()
        if field is not None
    }
    if "model" in out:
        m = mse_of(out["model"])
        out["model"]["skill"] = {
            f"vs_{ref}": skill(m, mse_of(out[ref])) if ref in out else None
            for ref in ("cmaq", "persistence")
        }
    return out


def persistence(previous_analysis: F) -> F:
    """The persistence forecast of a day: the previous day's analysis, hour by hour."""
    return np.asarray(previous_analysis)


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _aggregate_basic(days: Sequence[dict[str, Any]]) -> dict[str, Any]:
    mse = np.asarray([d["mse_by_hour"] for d in days], np.float64)
    rmse_daily = np.asarray([d["rmse_by_hour"] for d in days], np.float64)
    return {
        "n": int(sum(d["n"] for d in days)),
        "rmse": math.sqrt(float(mse.mean())),
        "bias": float(np.mean([d["bias"] for d in days])),  # every day has the same n
        "mae": float(np.mean([d["mae"] for d in days])),
        "mean_daily_r": _mean([d["r"] for d in days]),
        "rmse_by_hour": np.sqrt(mse.mean(axis=0)).tolist(),
        "spatial_rmse_by_hour": rmse_daily.mean(axis=0).tolist(),
    }


def aggregate(days: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One source's scores over a period, from its daily :func:`score_source` results.

    RMSE by hour pools the squared errors of all days (the paper's RMSE per forecast hour);
    spatial RMSE by hour is the mean over days of each hour's RMSE over the cells (the paper's
    spatial RMSE); bias and MAE are exact means (every day has the same cells); ``mean_daily_r``
    is the mean of the days' Pearson r. Grade tables and peak-hour sums are added up.
    """
    if not days:
        raise ValueError("no days to aggregate")
    out: dict[str, Any] = {"days": len(days), "cells": _aggregate_basic([d["cells"] for d in days])}
    if all("stations" in d for d in days):
        out["stations"] = _aggregate_basic([d["stations"] for d in days])
    out["grades"] = grade_scores(
        np.sum([np.asarray(d["grades"]["table"], np.int64) for d in days], axis=0)
    )
    out["peak"] = peak_scores(
        int(sum(d["peak"]["n"] for d in days)), float(sum(d["peak"]["sse"] for d in days))
    )
    return out


# -- a period of forecasts at once: the scores of the model ablation (issue 14) ---------------

BAND_WIDTH = 3
"""Cells of the outer band of the grid, where the ConvLSTM's zero padding shows (PAPER.md)."""


def band_mask(shape: tuple[int, int], width: int = BAND_WIDTH) -> npt.NDArray[np.bool_]:
    """True on the outer ``width`` cells of a ``(rows, cols)`` grid, False inside.

    >>> int(band_mask((5, 6), 2).sum()), int((~band_mask((5, 6), 2)).sum())
    (28, 2)
    """
    rows, cols = shape
    if 2 * width >= min(rows, cols):
        raise ValueError(f"a band of {width} cells leaves no interior in {shape}")
    band = np.ones(shape, bool)
    band[width:-width, width:-width] = False
    return band


def region_sse(forecast: F, truth: F, mask: npt.NDArray[np.bool_]) -> dict[str, Any]:
    """Count and sum of squared errors over the cells of ``mask`` (every hour): they add up
    over days, like the peak scores."""
    err = np.asarray(forecast, np.float64)[..., mask] - np.asarray(truth, np.float64)[..., mask]
    return {"n": int(err.size), "sse": float((err * err).sum())}


def daily_mse(forecast: F, truth: F) -> npt.NDArray[np.float64]:
    """Each day's MSE over all its cell-hours, for ``(days, 24, rows, cols)`` arrays (the
    same as :func:`mse_of` of each day's :func:`score_source`)."""
    f = np.asarray(forecast, np.float64)
    err = f - np.asarray(truth, np.float64)
    return np.asarray((err * err).reshape(f.shape[0], -1).mean(axis=1))


def _rmse(sums: dict[str, Any]) -> float | None:
    return math.sqrt(sums["sse"] / sums["n"]) if sums["n"] else None


def period_skill(
    forecast: F, truth: F, reference: F | None = None, band: int = BAND_WIDTH
) -> dict[str, Any]:
    """Where people care, over a period ``(days, 24, rows, cols)``: the ablation's scores.

    Every day is scored by :func:`score_source` and the days by :func:`aggregate`, so these
    are the verification module's own definitions; the outer band and the interior are added
    up the same way (:func:`region_sse`).

    Parameters
    ----------
    forecast, truth
        The forecasts and the analysis of the same days.
    reference
        Another forecast of the same days (raw CMAQ): ``days_worse`` counts the days on which
        ``forecast``'s daily RMSE is above the reference's.
    band
        Width of the outer band, in cells.

    Returns
    -------
    dict
        ``rmse_mean`` and ``spatial_rmse_mean`` (the paper's: means over the 24 hours),
        ``rmse`` (all cell-hours), ``peak`` (cell-hours whose analysis is >= 75 ug/m3),
        ``std`` of the forecast values, ``band`` and ``interior`` RMSE and their ``band_ratio``,
        ``bad_or_worse`` and ``very_bad`` (POD, FAR, CSI of daily-mean grades at each cell:
        >= 36 and >= 76 ug/m3), ``days`` and ``days_worse`` (``None`` without a reference).
    """
    f = np.asarray(forecast)
    a = np.asarray(truth)
    if f.shape != a.shape or f.ndim != 4:
        raise ValueError(f"forecast {f.shape} and analysis {a.shape} must be equal 4-D")
    mask = band_mask(f.shape[2:], band)
    days, edge, inner = [], [], []
    for k in range(f.shape[0]):
        days.append(score_source(f[k], a[k]))
        edge.append(region_sse(f[k], a[k], mask))
        inner.append(region_sse(f[k], a[k], ~mask))
    period = aggregate(days)
    sums = {
        name: {"n": sum(d["n"] for d in parts), "sse": sum(d["sse"] for d in parts)}
        for name, parts in (("band", edge), ("interior", inner))
    }
    band_rmse, interior_rmse = _rmse(sums["band"]), _rmse(sums["interior"])
    worse = None
    if reference is not None:
        worse = int((daily_mse(f, a) > daily_mse(reference, a)).sum())
    cells = period["cells"]
    return {
        "days": period["days"],
        "rmse": cells["rmse"],
        "rmse_mean": float(np.mean(cells["rmse_by_hour"])),
        "spatial_rmse_mean": float(np.mean(cells["spatial_rmse_by_hour"])),
        "bias": cells["bias"],
        "peak": period["peak"],
        "std": float(np.std(f, dtype=np.float64)),
        "band_width": band,
        "band": band_rmse,
        "interior": interior_rmse,
        "band_ratio": band_rmse / interior_rmse if band_rmse and interior_rmse else None,
        "bad_or_worse": period["grades"]["bad_or_worse"],
        "very_bad": period["grades"]["very_bad"],
        "days_worse": worse,
    }
