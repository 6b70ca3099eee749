"""Training and scoring on an archive: the service's data (readers, tensors) meets ``models``.

This is the one place that wires the two together for modellers: ``models`` knows networks
and metrics, the service knows files, grids and features.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np

from models.artifact import (
    LoadedModel,
    ModelCard,
    library_versions,
    record_metrics,
    save_artifact,
)
from models.evaluate import card_metrics, evaluate, map_days, predict_all, write_report
from models.train import TrainConfig, save_history, train
from service import __version__
from service.features import INPUT_FEATURES, TARGET
from service.grid import Grid
from service.settings import GridSpec
from service.training.dataset import Dataset, build_dataset

log = logging.getLogger(__name__)


def _cache_for(out: Path, cache: Path | None, start: dt.date, end: dt.date) -> Path:
    return cache or out.parent / f"dataset-{start:%Y%m%d}-{end:%Y%m%d}"


def make_card(
    case: int,
    grid: GridSpec,
    result_scalers: tuple[dict[str, list[float]], dict[str, list[float]]],
    training: dict[str, object],
    synthetic: bool,
    archive: Path,
) -> ModelCard:
    """The card of a model trained on the service grid and vocabulary."""
    source = (
        f"SYNTHETIC: the pm25-forecast twin (archive {archive.name}); not real CMAQ/WRF data"
        if synthetic
        else f"archive {archive}"
    )
    return ModelCard(
        name=f"convlstm-case{case}",
        version=f"{__version__}+{training.get('period_end', '')}",
        case=case,
        features=[{"name": f.name, "unit": f.unit} for f in INPUT_FEATURES],
        target={"name": TARGET.name, "unit": TARGET.unit, "source": "PM2.5 assimilation analysis"},
        grid=Grid(grid).describe(),
        hours=24,
        input_scaling=result_scalers[0],
        target_scaling=result_scalers[1],
        training=training,
        data_source=source,
        synthetic=synthetic,
        library_versions=library_versions(),
    )


def train_on_dataset(
    data: Dataset,
    case: int,
    out: Path,
    *,
    config: TrainConfig,
    grid: GridSpec,
    synthetic: bool,
    archive: Path,
) -> ModelCard:
    """Train one case on a dataset; save the artifact and learning curves into ``out``."""
    result = train(data.x, data.y, config)
    training = {
        "period_start": data.dates[0].isoformat(),
        "period_end": data.dates[-1].isoformat(),
        "samples": len(data.dates),
        "validation_split": config.validation_split,
        "epochs_run": len(result.history["loss"]),
        "best_epoch": result.best_epoch,
        "best_val_loss": float(min(result.history.get("val_loss", result.history["loss"]))),
        "optimizer": f"Adam lr={config.learning_rate}, ReduceLROnPlateau to "
        f"{config.min_learning_rate}",
        "loss": "mae",
        "batch_size": config.batch_size,
        "filters": config.filters,
        "seed": config.seed,
    }
    card = make_card(
        case,
        grid,
        (result.input_scaler.as_dict(), result.target_scaler.as_dict()),
        training,
        synthetic,
        archive,
    )
    save_artifact(result.model, card, out)
    save_history(result.history, out)
    return card


def train_from_archive(
    archive: Path,
    case: int,
    start: dt.date,
    end: dt.date,
    out: Path,
    *,
    cache: Path | None = None,
    epochs: int = 200,
    filters: int = 36,
    seed: int = 0,
    synthetic: bool = True,
    grid: GridSpec | None = None,
    verbose: int = 2,
) -> ModelCard:
    """Build (or reuse) the dataset for ``start..end`` and train one case on it."""
    grid = grid or GridSpec()
    data = build_dataset(archive, start, end, _cache_for(out, cache, start, end), grid)
    config = TrainConfig(case=case, epochs=epochs, filters=filters, seed=seed, verbose=verbose)
    return train_on_dataset(
        data, case, out, config=config, grid=grid, synthetic=synthetic, archive=archive
    )


def evaluate_on_archive(
    archive: Path,
    model_paths: list[Path],
    start: dt.date,
    end: dt.date,
    out: Path,
    *,
    cache: Path | None = None,
    grid: GridSpec | None = None,
    notes: Path | None = None,
    record: bool = False,
) -> Path:
    """Score models and raw CMAQ over ``start..end``; write the report into ``out``.

    ``notes`` is a markdown file appended to the report (the discussion of the results); with
    ``record`` each model's card is updated with its scores on this period.
    """
    grid = grid or GridSpec()
    data = build_dataset(archive, start, end, _cache_for(out, cache, start, end), grid)
    feature_names = [f.name for f in INPUT_FEATURES]
    predictions, histories, names = {}, {}, {}
    synthetic = False
    for path in model_paths:
        model = LoadedModel(path, feature_names, Grid(grid).describe())
        name = names[path] = f"case{model.card.case}"
        predictions[name] = predict_all(model, data.x)
        synthetic = synthetic or model.card.synthetic
        hist = Path(model.path).parent / "history.json"
        if hist.is_file():
            histories[name] = json.loads(hist.read_text())
    cmaq = np.asarray(data.x[..., feature_names.index("pm25")])
    truth = np.asarray(data.y)
    metrics = evaluate(predictions, cmaq, truth, data.dates)
    if record:
        label = "twin PM2.5 assimilation analysis (SYNTHETIC)" if synthetic else "PM2.5 analysis"
        for path, name in names.items():
            record_metrics(path, card_metrics(metrics, name, label))
    idx = map_days(data.dates)
    maps = None
    if len(idx) == 2:
        maps = {
            "analysis": truth[idx].reshape(48, *truth.shape[2:]),
            "raw CMAQ": cmaq[idx].reshape(48, *truth.shape[2:]),
        }
        for name, p in predictions.items():
            maps[name] = p[idx].reshape(48, *truth.shape[2:])
    commands = [
        f"pm25 evaluate --archive {archive} "
        + " ".join(f"--model {p}" for p in model_paths)
        + f" --start {start} --end {end} --out {out}"
        + (f" --notes {notes}" if notes else "")
        + (" --record" if record else "")
    ]
    text = notes.read_text(encoding="utf-8") if notes else None
    return write_report(metrics, out, maps, histories, commands, synthetic, text)
