"""Training a ConvLSTM case the paper's way (PAPER.md, "Training").

Adam at 1e-4, MAE loss, batch 18, Keras ``validation_split`` 0.2 (the last 20% of the
samples), ReduceLROnPlateau (patience 10, floor 1e-6), EarlyStopping (patience 20, best
weights restored). Inputs and target are min-max scaled with ranges fitted on the training
data only. Seeds are fixed. With several accelerators, Keras' data-parallel distribution
spreads each batch over them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.convlstm import build_model
from models.scaling import MinMax

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Hyperparameters; defaults are the paper's."""

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


@dataclass
class TrainResult:
    model: Any
    history: dict[str, list[float]]
    input_scaler: MinMax
    target_scaler: MinMax
    best_epoch: int


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
) -> TrainResult:
    """Fit one case on raw inputs ``(N, 24, rows, cols, F)`` and target ``(N, 24, rows, cols)``."""
    import keras

    keras.utils.set_random_seed(config.seed)
    _distribute()
    input_scaler = MinMax.fit(x)
    target_scaler = MinMax.fit(np.asarray(y)[..., None])
    xs = input_scaler.transform(x)
    ys = target_scaler.transform(np.asarray(y)[..., None])
    model = build_model(config.case, tuple(x.shape[1:]), filters=config.filters)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mae")
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
    if config.time_limit_s:
        callbacks.append(TimeLimit(config.time_limit_s))
    fit = model.fit(
        xs,
        ys,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_split=config.validation_split,
        shuffle=True,
        callbacks=callbacks,
        verbose=config.verbose,
    )
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    val = history.get("val_loss") or history["loss"]
    best = int(np.argmin(val)) + 1
    # Ship an uncompiled copy: the optimizer's state is not part of the artifact.
    shipped = build_model(config.case, tuple(x.shape[1:]), filters=config.filters)
    shipped.set_weights(model.get_weights())
    return TrainResult(shipped, history, input_scaler, target_scaler, best)


class TimeLimit:
    """Stop training after a wall-clock budget; EarlyStopping still restores the best weights."""

    def __new__(cls, seconds: float) -> Any:
        import time

        import keras

        class _TimeLimit(keras.callbacks.Callback):
            def on_train_begin(self, logs: Any = None) -> None:
                self.start = time.monotonic()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                if time.monotonic() - self.start > seconds:
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
