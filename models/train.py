"""Training a ConvLSTM case the paper's way (PAPER.md, "Training"), and the issue-14 variants.

The paper's setup, which the defaults of :class:`TrainConfig` reproduce exactly: Adam at 1e-4,
MAE loss, batch 18, Keras ``validation_split`` 0.2 (the last 20% of the samples),
ReduceLROnPlateau (patience 10, floor 1e-6), EarlyStopping (patience 20, best weights
restored). Inputs and target are min-max scaled with ranges fitted on the training data only.
Seeds are fixed. With several accelerators, Keras' data-parallel distribution spreads each
batch over them.

Each variant of issue 14 is one option, off by default, and they combine (:data:`VARIANTS`):

* ``validation="seasonal"``: every n-th whole week of the training days is the validation set,
  so early stopping sees every season (the last 20% is late May to December of the last year);
* ``margin``: inputs on a window wider than the output grid by ``margin`` cells on each side;
  the network's output is cropped to the grid, so the loss never sees the margin;
* ``loss="weighted_mae"``: MAE weighted by ``1 + (y / 75) ** 2``
  (:class:`models.layers.WeightedMAE`);
* ``loss="mse"``: mean squared error, whose minimiser is the conditional mean rather than
  MAE's median: the scores are RMSEs, and a median under-shoots the peaks of a skewed field;
* ``oversample``: training days with high concentrations appear ``oversample`` times;
* ``residual``: the network predicts the correction to CMAQ's PM2.5
  (:class:`models.layers.CmaqResidual`);
* ``mixed_precision``: bfloat16 compute for speed (the shipped model is float32).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from models.convlstm import Residual, build_model
from models.scaling import MinMax

log = logging.getLogger(__name__)
F32 = npt.NDArray[np.float32]
Index = npt.NDArray[np.intp]


@dataclass
class TrainConfig:
    """Hyperparameters; defaults are the paper's, and every issue-14 option is off."""

    case: int = 3
    epochs: int = 200
    batch_size: int = 18
    learning_rate: float = 1e-4
    min_learning_rate: float = 1e-6
    validation_split: float = 0.2
    lr_patience: int = 10
    stop_patience: int = 20
    filters: int = 36
    seed: int = 0
    verbose: int = 2
    time_limit_s: float | None = None  # stop after this long (best weights still restored)
    deadline: float | None = None  # time.time() by which training must have stopped
    # -- issue 14 -----------------------------------------------------------------------------
    validation: Literal["split", "seasonal"] = "split"
    validation_every_weeks: int = 5  # seasonal: every n-th week (from the first day) held out
    margin: int = 0  # input cells on each side of the output grid
    loss: Literal["mae", "weighted_mae", "mse"] = "mae"
    loss_threshold: float = 75.0  # ug/m3 at which the weighted loss doubles
    loss_power: float = 2.0
    oversample: int = 1  # times each high-concentration training day appears
    oversample_threshold: float = 75.0  # ug/m3
    oversample_fraction: float = 0.01  # share of a day's cell-hours at or above the threshold
    residual: bool = False
    mixed_precision: bool = False  # bfloat16 compute while training (GPU speed)

    def describe(self) -> dict[str, Any]:
        """The options that differ from the paper's setup (empty for the paper's Case N)."""
        paper = TrainConfig(case=self.case)
        skip = {"epochs", "verbose", "time_limit_s", "deadline", "filters", "seed"}
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in skip and getattr(self, f.name) != getattr(paper, f.name)
        }

    def variant(self) -> dict[str, Any]:
        """The issue-14 options that differ from the paper's (what names a variant)."""
        return {k: v for k, v in self.describe().items() if k in VARIANT_FIELDS}


#: The options that make a model another variant of its case (not how fast it was trained).
VARIANT_FIELDS = frozenset(
    {
        "validation",
        "validation_every_weeks",
        "margin",
        "loss",
        "loss_threshold",
        "loss_power",
        "oversample",
        "oversample_threshold",
        "oversample_fraction",
        "residual",
    }
)


#: The named Case-3 variants of issue 14: one change at a time, then all together.
VARIANTS: dict[str, dict[str, Any]] = {
    "val_seasonal": {"validation": "seasonal"},
    "margin": {"margin": 4},
    "weighted_loss": {"loss": "weighted_mae"},
    "oversample": {"oversample": 3},
    "residual": {"residual": True},
}
VARIANTS["all"] = {k: v for options in VARIANTS.values() for k, v in options.items()}
# Found after the first ablation: the loss that matches the scores, alone and with the two
# changes that do not cost hourly skill (seasonal validation, predicting CMAQ's correction).
VARIANTS["mse_loss"] = {"loss": "mse"}
VARIANTS["residual_mse"] = {
    **VARIANTS["val_seasonal"],
    **VARIANTS["residual"],
    **VARIANTS["mse_loss"],
}


def _option(name: str, extra: str) -> tuple[str, Any]:
    """One ``OPTION=VALUE`` of a sensitivity run's name, converted to the option's type."""
    import typing

    key, sep, text = extra.partition("=")
    hints = typing.get_type_hints(TrainConfig)
    if not sep or key not in hints:
        raise ValueError(f"run {name!r}: {extra!r} is not OPTION=VALUE of TrainConfig")
    kind = hints[key]
    choices = typing.get_args(kind) if typing.get_origin(kind) is Literal else ()
    try:
        if kind is bool:
            value: Any = {"true": True, "false": False}[text.lower()]
        elif choices:
            value = next(c for c in choices if c == text)
        elif kind in (int, float):
            value = kind(text)
        else:  # float | None: the time limits
            value = None if text.lower() == "none" else float(text)
    except (KeyError, StopIteration, ValueError):
        allowed = f" (one of {', '.join(map(str, choices))})" if choices else ""
        raise ValueError(f"run {name!r}: {key}={text!r} is not a valid {key}{allowed}") from None
    return key, value


def variant_config(name: str, **base: Any) -> TrainConfig:
    """The :class:`TrainConfig` of a named run: ``case1``..``case4`` (the paper's setup) or a
    Case-3 variant of :data:`VARIANTS`; ``base`` sets the rest (epochs, time limit, ...).

    A name may add options after ``+`` (sensitivity runs): ``all+oversample=5+seed=1`` is the
    ``all`` variant with five copies of each high day and another random seed.
    """
    if "+" in name:
        head, *extras = name.split("+")
        changes = dict(_option(name, extra) for extra in extras)
        return replace(variant_config(head, **base), **changes)
    if name in VARIANTS:
        return replace(TrainConfig(**base), case=3, **VARIANTS[name])
    if name.startswith("case") and name[4:] in ("1", "2", "3", "4"):
        return replace(TrainConfig(**base), case=int(name[4:]))
    raise ValueError(f"unknown run {name!r}: case1..case4 or one of {sorted(VARIANTS)}")


@dataclass
class TrainResult:
    model: Any
    history: dict[str, list[float]]
    input_scaler: MinMax
    target_scaler: MinMax
    best_epoch: int
    validation_days: int = 0
    training_days: int = 0  # counting repeats of oversampled days


def seasonal_validation(dates: Sequence[dt.date], every_weeks: int = 5) -> npt.NDArray[np.bool_]:
    """Which days are held out: every ``every_weeks``-th whole week counted from the first day.

    Over a year, a week in five comes back every 35 days, so each season of each training year
    gives two or three weeks to the validation set (about 20% of the days, as the paper's
    split), and whole weeks keep the strongly correlated neighbouring days together.
    """
    if every_weeks < 2:
        raise ValueError("every_weeks must be at least 2")
    first = dates[0]
    weeks = np.asarray([(d - first).days // 7 for d in dates])
    return np.asarray(weeks % every_weeks == every_weeks - 1)


def high_days(
    y: npt.NDArray[np.floating], threshold: float, fraction: float, chunk: int = 32
) -> npt.NDArray[np.bool_]:
    """Days ``(N, 24, rows, cols)`` with at least ``fraction`` of their cell-hours >= threshold."""
    share = np.concatenate(
        [
            (np.asarray(y[s : s + chunk]) >= threshold).mean(axis=(1, 2, 3))
            for s in range(0, y.shape[0], chunk)
        ]
    )
    return np.asarray(share >= fraction)


def split_days(
    n: int, config: TrainConfig, dates: Sequence[dt.date] | None, y: npt.NDArray[np.floating]
) -> tuple[Index, Index]:
    """Indices of the training samples (high days repeated) and of the validation days."""
    if config.validation == "seasonal":
        if dates is None or len(dates) != n:
            raise ValueError("seasonal validation needs the date of every sample")
        held = seasonal_validation(dates, config.validation_every_weeks)
    else:  # the rule of Keras' validation_split: the last fraction of the samples
        held = np.arange(n) >= int(np.floor(n * (1.0 - config.validation_split)))
    train_idx = np.flatnonzero(~held)
    if config.oversample > 1:
        high = train_idx[
            high_days(y[train_idx], config.oversample_threshold, config.oversample_fraction)
        ]
        log.info("oversampling %d high-concentration days x%d", high.size, config.oversample)
        train_idx = np.sort(np.concatenate([train_idx, *([high] * (config.oversample - 1))]))
    return train_idx, np.flatnonzero(held)


def scaled(
    data: npt.NDArray[np.floating], scaler: MinMax, idx: Index | None = None, chunk: int = 32
) -> F32:
    """``scaler.transform(data[idx])`` built chunk by chunk: no full-size temporaries."""
    idx = np.arange(data.shape[0]) if idx is None else idx
    out = np.empty((idx.size, *data.shape[1:]), np.float32)
    for s in range(0, idx.size, chunk):
        out[s : s + chunk] = scaler.transform(data[idx[s : s + chunk]])
    return out


def residual_for(x_scaler: MinMax, y_scaler: MinMax, channel: int) -> Residual:
    """The map of CMAQ's PM2.5 (input ``channel``) from the inputs' scaled units to the
    target's, for :class:`models.layers.CmaqResidual`."""
    x_lo, x_span = x_scaler.low_span(channel)
    y_lo, y_span = y_scaler.low_span(0)
    return Residual(channel, x_span / y_span, (x_lo - y_lo) / y_span)


def _distribute() -> None:
    """Use every accelerator through Keras' data-parallel distribution (JAX backend)."""
    import keras

    if keras.backend.backend() != "jax":
        return
    try:
        devices = keras.distribution.list_devices("gpu")
    except RuntimeError:  # no GPU platform at all
        return
    if len(devices) > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        log.info("data-parallel training over %d GPUs", len(devices))


def train(
    x: npt.NDArray[np.floating],
    y: npt.NDArray[np.floating],
    config: TrainConfig,
    *,
    dates: Sequence[dt.date] | None = None,
    cmaq_channel: int | None = None,
) -> TrainResult:
    """Fit one case on raw inputs ``(N, 24, rows, cols, F)`` and target ``(N, 24, rows, cols)``.

    With ``config.margin`` the inputs are ``2 * margin`` cells wider and taller than the
    target. ``dates`` (one per sample) are needed for the seasonal validation, and
    ``cmaq_channel`` (where CMAQ's PM2.5 lies among the inputs) for the residual variant.
    """
    import keras

    m = config.margin
    if x.shape[2:4] != (y.shape[2] + 2 * m, y.shape[3] + 2 * m):
        raise ValueError(f"inputs {x.shape[2:4]} are not the target's {y.shape[2:]} + 2 x {m}")
    keras.utils.set_random_seed(config.seed)
    _distribute()
    input_scaler = MinMax.fit(x)
    target_scaler = MinMax.fit(np.asarray(y)[..., None])
    residual = None
    if config.residual:
        if cmaq_channel is None:
            raise ValueError("the residual variant needs the CMAQ PM2.5 channel")
        residual = residual_for(input_scaler, target_scaler, cmaq_channel)
    shape = tuple(x.shape[1:])
    paper_split = config.validation == "split" and config.oversample <= 1
    if paper_split:  # exactly the paper's call: Keras takes the last 20% itself
        train_idx, val_idx = np.arange(x.shape[0]), np.arange(0)
        data: dict[str, Any] = {"validation_split": config.validation_split}
    else:
        train_idx, val_idx = split_days(x.shape[0], config, dates, y)
        if val_idx.size == 0:
            raise ValueError(f"no validation days among {x.shape[0]} ({config.validation})")
        data = {
            "validation_data": (
                scaled(x, input_scaler, val_idx),
                scaled(np.asarray(y[val_idx])[..., None], target_scaler),
            )
        }
    xs = scaled(x, input_scaler, None if paper_split else train_idx)
    ys = scaled(np.asarray(y[train_idx])[..., None], target_scaler)
    if config.loss == "weighted_mae":
        from models.layers import WeightedMAE

        lo, span = target_scaler.low_span(0)
        loss: Any = WeightedMAE(lo, span, config.loss_threshold, config.loss_power)
    else:
        loss = config.loss  # "mae" or "mse": Keras' own
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model(config.case, shape, config.filters, margin=m, residual=residual)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss)
        callbacks: list[Any] = [
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss",
                patience=config.lr_patience,
                min_lr=config.min_learning_rate,
                factor=0.5,
            ),
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.stop_patience, restore_best_weights=True
            ),
        ]
        limits = [config.time_limit_s or np.inf]
        if config.deadline is not None:
            limits.append(config.deadline - time.time())
        if min(limits) < np.inf:
            callbacks.append(TimeLimit(max(min(limits), 1.0)))
        fit = model.fit(
            xs,
            ys,
            batch_size=config.batch_size,
            epochs=config.epochs,
            shuffle=True,
            callbacks=callbacks,
            verbose=config.verbose,
            **data,
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    val = history.get("val_loss") or history["loss"]
    best = int(np.argmin(val)) + 1
    # Ship an uncompiled float32 copy: the optimizer's state is not part of the artifact.
    shipped = build_model(config.case, shape, config.filters, margin=m, residual=residual)
    shipped.set_weights(model.get_weights())
    if paper_split:  # Keras' own rule for validation_split
        n_train = int(np.floor(x.shape[0] * (1.0 - config.validation_split)))
        n_val = x.shape[0] - n_train
    else:
        n_train, n_val = train_idx.size, val_idx.size
    return TrainResult(shipped, history, input_scaler, target_scaler, best, n_val, n_train)


class TimeLimit:
    """Stop training before a wall-clock budget runs out: after the epoch past which another
    epoch as long as the last one would overrun it. EarlyStopping (Keras 3) still restores the
    best weights when training ends, whatever stopped it."""

    def __new__(cls, seconds: float) -> Any:
        import keras

        class _TimeLimit(keras.callbacks.Callback):
            def on_train_begin(self, logs: Any = None) -> None:
                self.start = self.epoch_start = time.monotonic()

            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                self.epoch_start = time.monotonic()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                now = time.monotonic()
                if now - self.start + (now - self.epoch_start) > seconds:
                    log.info("time limit of %.0f s reached after epoch %d", seconds, epoch + 1)
                    self.model.stop_training = True

        return _TimeLimit()


def save_history(history: dict[str, list[float]], folder: Path) -> Path:
    """Write the learning curves as JSON (and PNG when matplotlib is available)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "history.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return folder / "history.json"
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history["loss"], label="train")
    if "val_loss" in history:
        ax.plot(history["val_loss"], label="validation")
    ax.set(xlabel="epoch", ylabel="MAE (scaled)", yscale="log", title="learning curve")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "learning_curve.png", dpi=100)
    plt.close(fig)
    return folder / "learning_curve.png"
