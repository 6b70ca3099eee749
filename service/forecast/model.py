"""The model as the daily run sees it: a tensor in, PM2.5 out, and a typed card.

``load_forecaster`` loads the artifact once per process and checks it against the service:
the checksum of everything that shapes the output, the feature order and the whole grid.
TensorFlow is imported by the loader, never by the API.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from models.artifact import ModelCard
from service.features import FEATURE_NAMES
from service.grid import Grid
from service.settings import GridSpec

F32 = npt.NDArray[np.float32]


class Forecaster(Protocol):
    """What the daily run needs of a model: its card, where it lies, and a prediction."""

    card: ModelCard
    path: Path

    def predict(self, tensor: npt.NDArray[np.floating]) -> F32:
        """PM2.5 (ug/m3) ``(24, rows, cols)`` from one day's ``(24, rows, cols, 12)`` input."""
        ...


@lru_cache(maxsize=2)
def load_forecaster(model_path: str, grid: GridSpec) -> Forecaster:
    """Load and check the model at ``model_path`` for the service grid ``grid``, once per process.

    Raises
    ------
    models.artifact.ModelArtifactError
        The artifact is missing, edited or corrupted, or was made for other features or
        another grid.
    """
    from models.artifact import ModelArtifactError

    try:
        from models.artifact import LoadedModel

        return LoadedModel(model_path, list(FEATURE_NAMES), Grid(grid).describe())
    except ImportError as exc:  # the `ml` extra (TensorFlow) is not installed
        raise ModelArtifactError(
            f"{model_path}: cannot load the model: {exc.name or exc} is not installed "
            "(pip install 'pm25-forecast[ml]')"
        ) from None
