"""The ConvLSTM network of the paper, Cases 1-4 (PAPER.md, "Network").

Input ``(24, rows, cols, 12)`` -> encoder ConvLSTM2D(36, 3x3) + BatchNormalization ->
decoder ConvLSTM2D(36, 3x3) + BatchNormalization -> output ConvLSTM2D(1, 1x1), every layer
returning sequences. The cases differ only in activations:

====  ===========================  =====================
case  encoder / decoder            output
====  ===========================  =====================
1     tanh                         tanh
2     relu                         tanh
3     tanh                         relu   (the paper's choice, and the service's)
4     relu                         relu
====  ===========================  =====================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ACTIVATIONS: dict[int, tuple[str, str]] = {
    1: ("tanh", "tanh"),
    2: ("relu", "tanh"),
    3: ("tanh", "relu"),
    4: ("relu", "relu"),
}
FILTERS = 36
KERNEL = (3, 3)


@dataclass(frozen=True)
class Residual:
    """Where CMAQ's PM2.5 is among the inputs, and how its scaled units map onto the target's
    (see :class:`models.layers.CmaqResidual`)."""

    channel: int
    scale: float
    offset: float


def build_model(
    case: int,
    input_shape: tuple[int, int, int, int] = (24, 68, 59, 12),
    filters: int = FILTERS,
    *,
    margin: int = 0,
    residual: Residual | None = None,
) -> Any:
    """Build the (uncompiled) Keras model of one case.

    Parameters
    ----------
    case
        1, 2, 3 or 4.
    input_shape
        ``(hours, rows, cols, features)``; with a margin, the rows and columns of the wider
        input window.
    filters
        Filters of the encoder and decoder; the paper's 36 unless a tiny test model is wanted.
    margin
        Cells of input on each side of the output grid (issue 14): the network runs on the
        wider window, so the zero padding of its convolutions falls on the margin, and the
        output is cropped to the inner grid, so the loss never sees the margin.
    residual
        Predict the correction to CMAQ (issue 14): the output ConvLSTM is linear and
        :class:`models.layers.CmaqResidual` adds CMAQ's PM2.5 and applies the ReLU.

    Returns
    -------
    keras.Model
        Output shape ``(None, hours, rows - 2 margin, cols - 2 margin, 1)``.
    """
    import keras
    from keras import layers

    if case not in ACTIVATIONS:
        raise ValueError(f"case must be 1, 2, 3 or 4, not {case!r}")
    if margin < 0 or 2 * margin >= min(input_shape[1:3]):
        raise ValueError(f"margin {margin} does not fit an input of {input_shape[1:3]} cells")
    hidden, out = ACTIVATIONS[case]
    if residual is not None:
        out = "linear"
    inputs = keras.Input(shape=input_shape, name="inputs")
    x = layers.ConvLSTM2D(
        filters, KERNEL, padding="same", activation=hidden, return_sequences=True, name="encoder"
    )(inputs)
    x = layers.BatchNormalization(name="encoder_bn")(x)
    x = layers.ConvLSTM2D(
        filters, KERNEL, padding="same", activation=hidden, return_sequences=True, name="decoder"
    )(x)
    x = layers.BatchNormalization(name="decoder_bn")(x)
    outputs = layers.ConvLSTM2D(
        1, (1, 1), padding="same", activation=out, return_sequences=True, name="output"
    )(x)
    if residual is not None:
        from models.layers import CmaqResidual

        outputs = CmaqResidual(
            residual.channel, residual.scale, residual.offset, name="cmaq_residual"
        )([inputs, outputs])
    if margin:
        outputs = layers.Cropping3D(((0, 0), (margin, margin), (margin, margin)), name="crop")(
            outputs
        )
    return keras.Model(inputs, outputs, name=f"convlstm_case{case}")
