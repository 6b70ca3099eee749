"""The trivial correction every network must beat: analysis ~ a + b CMAQ, per grid cell.

Issue 13 asks for it beside the networks, so that a reader sees what a ConvLSTM adds beyond a
per-cell linear regression of the analysis on raw CMAQ PM2.5, fitted by least squares on the
training years and applied unchanged to the test year. It is a closed form, computed from
running sums over the days in chunks (the datasets are memory-mapped), on the CPU in seconds.

>>> import numpy as np
>>> cmaq = np.random.default_rng(0).gamma(2.0, 10.0, (6, 24, 2, 3))
>>> fit = LinearCorrection.fit(cmaq, 4.0 + 0.5 * cmaq)
>>> bool(np.allclose(fit.a, 4.0) and np.allclose(fit.b, 0.5))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F = npt.NDArray[np.floating]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LinearCorrection:
    """Per-cell (or per-cell and per-hour) intercept ``a`` and slope ``b``.

    ``a`` and ``b`` have shape ``(rows, cols)``, or ``(24, rows, cols)`` when fitted per
    forecast hour; a cell whose CMAQ never varies gets ``b = 0`` and the mean analysis.
    """

    a: F64
    b: F64

    @property
    def per_hour(self) -> bool:
        return self.a.ndim == 3

    @classmethod
    def fit(cls, cmaq: F, truth: F, *, per_hour: bool = False, chunk: int = 32) -> LinearCorrection:
        """Least squares of ``truth`` on ``cmaq``, both ``(days, 24, rows, cols)``."""
        if cmaq.shape != truth.shape or cmaq.ndim != 4:
            raise ValueError(f"cmaq {cmaq.shape} and truth {truth.shape} must be equal 4-D")
        axes = (0,) if per_hour else (0, 1)
        shape = cmaq.shape[1:] if per_hour else cmaq.shape[2:]
        n = 0
        sx, sy, sxx, sxy = (np.zeros(shape) for _ in range(4))
        for start in range(0, cmaq.shape[0], chunk):
            x = np.asarray(cmaq[start : start + chunk], np.float64)
            y = np.asarray(truth[start : start + chunk], np.float64)
            n += x.shape[0] * (1 if per_hour else x.shape[1])
            sx += x.sum(axis=axes)
            sy += y.sum(axis=axes)
            sxx += (x * x).sum(axis=axes)
            sxy += (x * y).sum(axis=axes)
        mx, my = sx / n, sy / n
        var = sxx / n - mx * mx
        cov = sxy / n - mx * my
        # Relative to the cell's own scale, so a constant CMAQ (var ~ rounding) gets b = 0.
        flat = var <= 1e-12 * np.maximum(sxx / n, 1e-30)
        b = np.where(flat, 0.0, cov / np.where(flat, 1.0, var))
        return cls(my - b * mx, b)

    def apply(self, cmaq: F, *, clip: bool = True) -> npt.NDArray[np.float32]:
        """The corrected field for ``(days, 24, rows, cols)`` CMAQ (negative values cut to 0,
        as no concentration is below zero, unless ``clip`` is false)."""
        out = self.a + self.b * np.asarray(cmaq, np.float64)
        return (np.maximum(out, 0.0) if clip else out).astype(np.float32)
