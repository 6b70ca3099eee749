"""The model as the daily run sees it: a tensor in, PM2.5 out, and a typed card.

``load_forecaster`` loads the artifact once per process and checks it against the service:
the checksum of everything that shapes the output, the feature order and the whole grid.
One day's forecast then runs as one fixed-shape TensorFlow graph of the same ConvLSTM math
with the artifact's own weights (:func:`fused_network`), used only when it agrees with the
Keras model on a probe input. TensorFlow is imported by the loader, never by the API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from models.artifact import ModelCard
from service.features import FEATURE_NAMES
from service.grid import Grid
from service.settings import GridSpec

F32 = npt.NDArray[np.float32]
log = logging.getLogger(__name__)
#: How far (in the model's scaled output, 0-1) the fused graph may differ from Keras on the
#: probe input; float32 sums in another order differ by about 1e-7.
PROBE_TOLERANCE = 1e-5


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

        loaded = LoadedModel(model_path, list(FEATURE_NAMES), Grid(grid).describe())
    except ImportError as exc:  # the `ml` extra (TensorFlow) is not installed
        raise ModelArtifactError(
            f"{model_path}: cannot load the model: {exc.name or exc} is not installed "
            "(pip install 'pm25-forecast[ml]')"
        ) from None
    return FusedForecaster.of(loaded)


class FusedForecaster:
    """A loaded model whose one-day forecast runs as :func:`fused_network`.

    Everything else (batches of days, a tensor of the wrong shape and its error, the card,
    the scaling) is the loaded model's own.
    """

    def __init__(self, loaded: Any, network: Callable[[F32], F32]) -> None:
        self.loaded = loaded
        self.card: ModelCard = loaded.card
        self.path: Path = loaded.path
        self.network = network
        self.shape = (
            loaded.card.hours,
            loaded.card.grid["nrows"],
            loaded.card.grid["ncols"],
            len(loaded.card.features),
        )

    @classmethod
    def of(cls, loaded: Any) -> Forecaster:
        """``loaded`` with the fused graph when it can be built and agrees with Keras on a
        probe input; otherwise ``loaded`` itself (logged)."""
        try:
            network = fused_network(loaded.model, loaded.card)
        except (ImportError, UnsupportedNetworkError) as exc:
            log.info("%s: the Keras model runs as it is (%s)", loaded.path, exc)
            return loaded
        shape = (1, loaded.card.hours, loaded.card.grid["nrows"], loaded.card.grid["ncols"])
        probe = np.random.default_rng(0).random((*shape, len(loaded.card.features)), np.float32)
        try:  # the graph is traced and compiled on its first call: a failure there falls back
            keras_out = np.asarray(loaded.model(probe, training=False))
            difference = float(np.max(np.abs(network(probe) - keras_out)))
        except Exception as exc:  # any failure of the optional graph: Keras runs
            log.warning(
                "%s: the fused graph failed on the probe (%s); Keras runs", loaded.path, exc
            )
            return loaded
        if not difference <= PROBE_TOLERANCE:
            log.warning(
                "%s: the fused graph differs from Keras by %.3g on the probe; Keras runs",
                loaded.path,
                difference,
            )
            return loaded
        return cls(loaded, network)

    def predict(self, tensor: npt.NDArray[np.floating]) -> F32:
        """PM2.5 (ug/m3) ``(24, rows, cols)`` of one day (batches: the loaded model's path)."""
        x = np.asarray(tensor, np.float32)
        if x.shape != self.shape:
            return self.loaded.predict(tensor)
        scaled = self.network(self.loaded.input_scaler.transform(x[None]))
        out: F32 = self.loaded.target_scaler.inverse(scaled)[0, ..., 0]
        return out


class UnsupportedNetworkError(ValueError):
    """The model has a layer or setting :func:`fused_network` does not reproduce."""


def fused_network(model: Any, card: ModelCard) -> Callable[[F32], F32]:
    """The Keras ConvLSTM stack of ``model`` as one fixed-shape TensorFlow graph, same weights.

    The same math as ``keras.layers.ConvLSTM2D`` and ``BatchNormalization`` at inference,
    arranged for two CPU cores: each layer's input convolution runs once over all 24 hours
    (one batched convolution instead of 24), the four gates of a step are one convolution
    of the hidden state (Keras runs eight small ones a step), the first step skips the
    convolution of the zero state, and the 24 steps are unrolled into one graph for the
    card's input shape, compiled by XLA (about 5 s, once, on the first call).

    Raises
    ------
    UnsupportedNetworkError
        A layer other than those, or a setting (padding, strides, direction) this does not
        reproduce.
    """
    import tensorflow as tf

    hours, rows, cols = card.hours, card.grid["nrows"], card.grid["ncols"]
    stages: list[Callable[[Any], Any]] = []
    for layer in model.layers:
        kind = type(layer).__name__
        config = layer.get_config()
        if kind == "InputLayer":
            continue
        if kind == "ConvLSTM2D":
            wanted = {
                "padding": "same",
                "strides": (1, 1),
                "dilation_rate": (1, 1),
                "data_format": "channels_last",
                "return_sequences": True,
                "go_backwards": False,
                "stateful": False,
                "use_bias": True,
            }
            differ = {k: config.get(k) for k, v in wanted.items() if config.get(k) != v}
            if differ:
                raise UnsupportedNetworkError(f"{layer.name}: {differ}")
            stages.append(_convlstm(tf, layer, hours))
        elif kind == "BatchNormalization":
            if config.get("axis") not in (-1, [-1], 4, [4]):
                raise UnsupportedNetworkError(f"{layer.name}: axis {config.get('axis')}")
            stages.append(_batch_norm(tf, layer))
        else:
            raise UnsupportedNetworkError(f"{layer.name}: {kind}")

    spec = tf.TensorSpec((1, hours, rows, cols, len(card.features)), tf.float32)

    @tf.function(input_signature=[spec], jit_compile=True)
    def forward(x: Any) -> Any:
        sequence = x[0]  # the hours as a batch
        for stage in stages:
            sequence = stage(sequence)
        return sequence[None]

    return lambda x: np.asarray(forward(tf.convert_to_tensor(x, tf.float32)).numpy())


def _convlstm(tf: Any, layer: Any, hours: int) -> Callable[[Any], Any]:
    cell = layer.cell
    kernel = tf.constant(np.asarray(cell.kernel))
    recurrent = tf.constant(np.asarray(cell.recurrent_kernel))
    bias = tf.constant(np.asarray(cell.bias))
    act, gate = cell.activation, cell.recurrent_activation

    def run(sequence: Any) -> Any:
        inputs = tf.nn.conv2d(sequence, kernel, 1, "SAME") + bias  # every hour at once
        h = c = None
        out = []
        for t in range(hours):
            z = inputs[t : t + 1]
            if h is not None:
                z = z + tf.nn.conv2d(h, recurrent, 1, "SAME")
            z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)  # Keras's order: i, f, c, o
            i = gate(z_i)
            c = i * act(z_c) if c is None else gate(z_f) * c + i * act(z_c)
            h = gate(z_o) * act(c)
            out.append(h)
        return tf.concat(out, 0)

    return run


def _batch_norm(tf: Any, layer: Any) -> Callable[[Any], Any]:
    variance = np.asarray(layer.moving_variance, np.float64)
    scale = np.asarray(layer.gamma, np.float64) / np.sqrt(variance + layer.epsilon)
    shift = np.asarray(layer.beta, np.float64) - np.asarray(layer.moving_mean) * scale
    scale_t, shift_t = tf.constant(scale.astype(np.float32)), tf.constant(shift.astype(np.float32))
    return lambda x: x * scale_t + shift_t
