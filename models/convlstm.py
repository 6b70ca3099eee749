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

from typing import Any

ACTIVATIONS: dict[int, tuple[str, str]] = {
    1: ("tanh", "tanh"),
    2: ("relu", "tanh"),
    3: ("tanh", "relu"),
    4: ("relu", "relu"),
}
FILTERS = 36
KERNEL = (3, 3)


def build_model(
    case: int,
    input_shape: tuple[int, int, int, int] = (24, 68, 59, 12),
    filters: int = FILTERS,
) -> Any:
    """Build the (uncompiled) Keras model of one case.

    Parameters
    ----------
    case
        1, 2, 3 or 4.
    input_shape
        ``(hours, rows, cols, features)``.
    filters
        Filters of the encoder and decoder; the paper's 36 unless a tiny test model is wanted.

    Returns
    -------
    keras.Model
        Output shape ``(None, hours, rows, cols, 1)``.
    """
    import keras
    from keras import layers

    if case not in ACTIVATIONS:
        raise ValueError(f"case must be 1, 2, 3 or 4, not {case!r}")
    hidden, out = ACTIVATIONS[case]
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
    return keras.Model(inputs, outputs, name=f"convlstm_case{case}")
