"""Min-max scaling of inputs and target, fitted on the training years only (PAPER.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class MinMax:
    """Per-channel minimum and maximum; ``transform`` maps them to 0 and 1."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    @classmethod
    def fit(cls, data: npt.NDArray[np.floating], chunk: int = 64) -> MinMax:
        """Fit on ``(..., channels)`` data, reading it in chunks along axis 0 (memmaps)."""
        lo = np.full(data.shape[-1], np.inf)
        hi = np.full(data.shape[-1], -np.inf)
        axes = tuple(range(data.ndim - 1))
        for start in range(0, data.shape[0], chunk):
            block = np.asarray(data[start : start + chunk], dtype=np.float64)
            lo = np.minimum(lo, block.min(axis=axes))
            hi = np.maximum(hi, block.max(axis=axes))
        return cls(tuple(float(v) for v in lo), tuple(float(v) for v in hi))

    def _arrays(self) -> tuple[F32, F32]:
        lo = np.asarray(self.low, np.float32)
        span = np.asarray(self.high, np.float32) - lo
        return lo, np.where(span > 0, span, np.float32(1.0)).astype(np.float32)

    def low_span(self, channel: int) -> tuple[float, float]:
        """The minimum of one channel and the span that ``transform`` divides by."""
        lo, span = self._arrays()
        return float(lo[channel]), float(span[channel])

    def transform(self, data: npt.NDArray[np.floating]) -> F32:
        lo, span = self._arrays()
        return ((np.asarray(data, np.float32) - lo) / span).astype(np.float32)

    def inverse(self, data: npt.NDArray[np.floating]) -> F32:
        lo, span = self._arrays()
        return (np.asarray(data, np.float32) * span + lo).astype(np.float32)

    def as_dict(self) -> dict[str, list[float]]:
        return {"min": list(self.low), "max": list(self.high)}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> MinMax:
        return cls(tuple(d["min"]), tuple(d["max"]))
