"""Training and scoring on an archive: the service's data (readers, tensors) meets ``models``.

This is the one place that wires the two together for modellers: ``models`` knows networks
and metrics, the service knows files, grids and features.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from models.artifact import (
    LoadedModel,
    ModelCard,
    library_versions,
    record_metrics,
    save_artifact,
)
from models.baseline import LinearCorrection
from models.evaluate import (
    Skill,
    card_metrics,
    evaluate,
    map_days,
    predict_all,
    write_ablation,
    write_report,
)
from models.train import TrainConfig, save_history, train
from service import __version__
from service.features import FEATURE_NAMES, INPUT_FEATURES, TARGET
from service.grid import Grid
from service.settings import GridSpec
from service.training.dataset import Dataset, build_dataset
from service.verification.scores import period_skill

log = logging.getLogger(__name__)
F32 = npt.NDArray[np.float32]


def _cache_for(out: Path, cache: Path | None, start: dt.date, end: dt.date) -> Path:
    return cache or out.parent / f"dataset-{start:%Y%m%d}-{end:%Y%m%d}"


def make_card(
    case: int,
    grid: GridSpec,
    result_scalers: tuple[dict[str, list[float]], dict[str, list[float]]],
    training: dict[str, object],
    synthetic: bool,
    archive: Path,
    *,
    name: str | None = None,
    margin: int = 0,
) -> ModelCard:
    """The card of a model trained on the service grid and vocabulary (its inputs ``margin``
    cells wider on each side)."""
    source = (
        f"SYNTHETIC: the pm25-forecast twin (archive {archive.name}); not real CMAQ/WRF data"
        if synthetic
        else f"archive {archive}"
    )
    return ModelCard(
        name=name or f"convlstm-case{case}",
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
        margin=margin,
    )


def model_name(config: TrainConfig) -> str:
    """``convlstm-caseN`` for the paper's network and data; the variant's options appended."""
    parts = [f"convlstm-case{config.case}"]
    for key, value in config.variant().items():
        parts.append(key if value is True else f"{key}={value}")
    return "+".join(parts)


def row_name(card: ModelCard) -> str:
    """The row of a model in the report: ``caseN`` for the paper's setup, else its card name."""
    return card.name.removeprefix("convlstm-")


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
    """Train one case on a dataset; save the artifact and learning curves into ``out``.

    ``config.case`` is the case trained (``case`` must agree); a dataset with a wider margin
    than ``config.margin`` is narrowed to it.
    """
    if case != config.case:
        raise ValueError(f"case {case} but the configuration trains case {config.case}")
    data = data.with_margin(config.margin)
    result = train(
        data.x, data.y, config, dates=data.dates, cmaq_channel=FEATURE_NAMES.index("pm25")
    )
    training = {
        "period_start": data.dates[0].isoformat(),
        "period_end": data.dates[-1].isoformat(),
        "samples": len(data.dates),
        "validation_split": config.validation_split,
        "validation_days": result.validation_days,
        "training_samples": result.training_days,
        "options": config.describe(),
        "epochs_run": len(result.history["loss"]),
        "best_epoch": result.best_epoch,
        "best_val_loss": float(min(result.history.get("val_loss", result.history["loss"]))),
        "optimizer": f"Adam lr={config.learning_rate}, ReduceLROnPlateau to "
        f"{config.min_learning_rate}",
        "loss": config.loss,
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
        name=model_name(config),
        margin=config.margin,
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
    config: TrainConfig | None = None,
) -> ModelCard:
    """Build (or reuse) the dataset for ``start..end`` and train one case on it (``config``,
    if given, instead of the paper's setup with ``epochs``, ``filters`` and ``seed``)."""
    grid = grid or GridSpec()
    config = config or TrainConfig(
        case=case, epochs=epochs, filters=filters, seed=seed, verbose=verbose
    )
    cache = _cache_for(out, cache, start, end)
    if config.margin:
        cache = cache.with_name(f"{cache.name}-margin{config.margin}")
    data = build_dataset(archive, start, end, cache, grid, margin=config.margin)
    return train_on_dataset(
        data, case, out, config=config, grid=grid, synthetic=synthetic, archive=archive
    )


def linear_baselines(train_data: Dataset, test_data: Dataset) -> dict[str, F32]:
    """The per-cell linear corrections of raw CMAQ (issue 13), fitted on ``train_data`` and
    applied to ``test_data``: ``linear`` (one a, b per cell) and ``linear_hourly`` (per cell
    and forecast hour)."""
    cmaq_train, truth_train = train_data.cmaq, np.asarray(train_data.y)
    cmaq_test = test_data.cmaq
    return {
        name: LinearCorrection.fit(cmaq_train, truth_train, per_hour=hourly).apply(cmaq_test)
        for name, hourly in (("linear", False), ("linear_hourly", True))
    }


def skill_rows(predictions: dict[str, F32], cmaq: F32, truth: F32) -> dict[str, Skill]:
    """The verification module's period scores of raw CMAQ and every forecast (issue 14)."""
    rows = {"cmaq": period_skill(cmaq, truth)}
    rows.update({name: period_skill(p, truth, reference=cmaq) for name, p in predictions.items()})
    return cast(dict[str, Skill], rows)  # period_skill's keys are Skill's


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
    baseline_period: tuple[dt.date, dt.date] | None = None,
    ablation: bool = False,
) -> Path:
    """Score models and raw CMAQ over ``start..end``; write the report into ``out``.

    ``notes`` is a markdown file appended to the report (the discussion of the results); with
    ``record`` each model's card is updated with its scores on this period. With
    ``baseline_period`` (the training years) the per-cell linear corrections fitted on it are
    scored beside the models; with ``ablation`` ``ABLATION.md`` is written too.
    """
    grid = grid or GridSpec()
    feature_names = [f.name for f in INPUT_FEATURES]
    loaded = [LoadedModel(path, feature_names, Grid(grid).describe()) for path in model_paths]
    margin = max((model.card.margin for model in loaded), default=0)
    cache = _cache_for(out, cache, start, end)
    if margin:
        cache = cache.with_name(f"{cache.name}-margin{margin}")
    data = build_dataset(archive, start, end, cache, grid, margin=margin)
    predictions: dict[str, F32] = {}
    histories, names = {}, {}
    synthetic = False
    for path, model in zip(model_paths, loaded, strict=True):
        name = names[path] = row_name(model.card)
        predictions[name] = predict_all(model, data.with_margin(model.card.margin).x)
        synthetic = synthetic or model.card.synthetic
        hist = Path(model.path).parent / "history.json"
        if hist.is_file():
            histories[name] = json.loads(hist.read_text())
    cmaq = data.cmaq
    truth = np.asarray(data.y)
    baselines: dict[str, F32] = {}
    if baseline_period is not None:
        first, last = baseline_period
        train_data = build_dataset(archive, first, last, _cache_for(out, None, first, last), grid)
        baselines = linear_baselines(train_data, data)
    skill = skill_rows({**baselines, **predictions}, cmaq, truth)
    metrics = evaluate({**baselines, **predictions}, cmaq, truth, data.dates, skill)
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
        + (f" --baseline {baseline_period[0]}:{baseline_period[1]}" if baseline_period else "")
        + (f" --notes {notes}" if notes else "")
        + (" --record" if record else "")
        + (" --ablation" if ablation else "")
    ]
    text = notes.read_text(encoding="utf-8") if notes else None
    if ablation:
        write_ablation(metrics, out, order=list(names.values()), commands=commands)
    return write_report(metrics, out, maps, histories, commands, synthetic, text)
