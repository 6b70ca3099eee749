"""The Keras pieces that the Case-3 variants add to the paper's network (issue 14).

Both are registered with Keras under the package ``pm25``, so a ``.keras`` file saved under
one backend (JAX on the training GPUs) loads under another (TensorFlow in the service) with
``compile=False``; :class:`models.artifact.LoadedModel` imports this module before loading.
Only ``keras.ops`` is used, so the code is backend-agnostic.

This module imports Keras: import it lazily (the API never imports a deep-learning backend).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="pm25")
class CmaqResidual(keras.layers.Layer):
    """PM2.5 = ReLU(raw CMAQ PM2.5 + the network's correction), in the target's scaled units.

    The network predicts the correction to CMAQ rather than PM2.5 itself. CMAQ's PM2.5 is read
    from the (min-max scaled) input channel ``channel`` and mapped to the target's scaled units:
    ``x * scale + offset`` with ``scale = input_span / target_span`` and
    ``offset = (input_min - target_min) / target_span``. The ReLU keeps the forecast
    non-negative; with a zero correction the output is CMAQ itself.

    Parameters
    ----------
    channel
        Index of CMAQ PM2.5 among the input channels.
    scale, offset
        The affine map from the input channel's scaled units to the target's.
    """

    def __init__(self, channel: int, scale: float, offset: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channel = int(channel)
        self.scale = float(scale)
        self.offset = float(offset)

    def call(self, inputs: Any) -> Any:
        x, correction = inputs
        cmaq = x[..., self.channel : self.channel + 1] * self.scale + self.offset
        return ops.relu(ops.cast(cmaq, correction.dtype) + correction)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape[1]

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(channel=self.channel, scale=self.scale, offset=self.offset)
        return config


@keras.saving.register_keras_serializable(package="pm25")
class WeightedMAE(keras.losses.Loss):
    """Mean absolute error weighted by ``1 + (y / threshold) ** power``, y the truth in ug/m3.

    The targets are min-max scaled; ``low`` and ``span`` map them back to ug/m3 so the weight
    is a physical one: with the defaults (75 ug/m3, power 2) an error at 75 ug/m3 counts twice
    as much as at clean air, at 150 five times. The peaks that people care about carry the
    weight that MAE on mostly clean cell-hours would not give them.

    Parameters
    ----------
    low, span
        The target's scaling: ``y_ugm3 = y_scaled * span + low``.
    threshold
        The concentration (ug/m3) at which the weight doubles.
    power
        How fast the weight grows beyond it.
    """

    def __init__(
        self,
        low: float = 0.0,
        span: float = 1.0,
        threshold: float = 75.0,
        power: float = 2.0,
        name: str = "weighted_mae",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.low = float(low)
        self.span = float(span)
        self.threshold = float(threshold)
        self.power = float(power)

    def weights_for(self, y_true: Any) -> Any:
        """The weight of each value of the (scaled) truth."""
        conc = ops.maximum(y_true * self.span + self.low, 0.0)
        return 1.0 + ops.power(conc / self.threshold, self.power)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        return ops.mean(self.weights_for(y_true) * ops.abs(y_pred - y_true), axis=-1)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(low=self.low, span=self.span, threshold=self.threshold, power=self.power)
        return config
