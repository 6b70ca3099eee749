"""The ConvLSTM: architecture per case, the artifact and its card, a tiny training run."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from models.artifact import LoadedModel, ModelArtifactError
from models.convlstm import build_model
from models.metrics import rmse_by_hour, spatial_rmse_by_hour
from models.scaling import MinMax
from service.features import FEATURE_NAMES
from service.grid import Grid
from service.settings import GridSpec
from service.twin.sample import write_sample_day

from .conftest import train_tiny

PAPER_ACTIVATIONS = {
    1: ("tanh", "tanh"),
    2: ("relu", "tanh"),
    3: ("tanh", "relu"),
    4: ("relu", "relu"),
}


@pytest.mark.parametrize("case", [1, 2, 3, 4])
def test_architecture_matches_the_paper(case: int) -> None:
    import keras

    model = build_model(case)
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    kinds = [type(layer).__name__ for layer in layers]
    assert kinds == [
        "ConvLSTM2D",
        "BatchNormalization",
        "ConvLSTM2D",
        "BatchNormalization",
        "ConvLSTM2D",
    ]
    enc, _, dec, _, out = layers
    hidden, final = PAPER_ACTIVATIONS[case]
    assert (enc.filters, enc.kernel_size, enc.activation.__name__) == (36, (3, 3), hidden)
    assert (dec.filters, dec.kernel_size, dec.activation.__name__) == (36, (3, 3), hidden)
    assert (out.filters, out.kernel_size, out.activation.__name__) == (1, (1, 1), final)
    assert all(layer.return_sequences for layer in (enc, dec, out))
    assert tuple(model.input.shape) == (None, 24, 68, 59, 12)
    assert tuple(model.output.shape) == (None, 24, 68, 59, 1)


def test_unknown_case_is_refused() -> None:
    with pytest.raises(ValueError, match="case must be 1, 2, 3 or 4"):
        build_model(5)


def test_minmax_round_trip_and_fit_in_chunks() -> None:
    data = np.random.default_rng(0).normal(size=(130, 3, 4)).astype(np.float32)
    scaler = MinMax.fit(data, chunk=7)
    scaled = scaler.transform(data)
    assert scaled.min() == pytest.approx(0.0, abs=1e-6) and scaled.max() == pytest.approx(
        1.0, abs=1e-6
    )
    np.testing.assert_allclose(scaler.inverse(scaled), data, atol=1e-5)


def test_metrics_follow_the_papers_definitions() -> None:
    truth = np.zeros((2, 24, 3, 3))
    pred = np.zeros((2, 24, 3, 3))
    pred[0, 5] = 2.0  # one day, one hour, every cell off by 2
    pred[1, 5, 0, 0] = 3.0
    r = rmse_by_hour(pred, truth)
    s = spatial_rmse_by_hour(pred, truth)
    assert r[0] == 0 and r[5] == pytest.approx(np.sqrt((9 * 4 + 9) / 18))
    assert s[5] == pytest.approx((2.0 + np.sqrt(9 / 9)) / 2)


@pytest.fixture(scope="module")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train")
    return train_tiny(root, 4, 2), root


def test_tiny_training_run_writes_a_self_describing_artifact(
    tiny_artifact: tuple[Path, Path],
) -> None:
    path, _ = tiny_artifact
    card = json.loads((path.parent / "card.json").read_text())
    assert card["case"] == 3 and card["synthetic"] is True and "SYNTHETIC" in card["data_source"]
    assert [f["name"] for f in card["features"]] == list(FEATURE_NAMES)
    assert card["features"][0]["unit"] == "ppm" and card["grid"]["ncols"] == 59
    assert len(card["input_scaling"]["min"]) == 12 and card["training"]["epochs_run"] == 2
    assert card["training"]["period_start"] == "2024-01-09"
    assert "keras" in card["library_versions"]
    assert (path.parent / "history.json").is_file()


def test_loaded_model_forecasts_non_negative_pm25(tiny_artifact: tuple[Path, Path]) -> None:
    path, root = tiny_artifact
    model = LoadedModel(path, list(FEATURE_NAMES), Grid(GridSpec()).describe())
    x = np.load(root / "cache" / "X.npy", mmap_mode="r")[0]
    out = model.predict(x)
    assert out.shape == (24, 68, 59) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0  # Case 3: ReLU output, min-max target


def test_changed_weights_are_refused(tiny_artifact: tuple[Path, Path], tmp_path: Path) -> None:
    path, _ = tiny_artifact
    (tmp_path / "model.keras").write_bytes(path.read_bytes() + b"x")
    (tmp_path / "card.json").write_bytes((path.parent / "card.json").read_bytes())
    with pytest.raises(ModelArtifactError, match="does not match the card"):
        LoadedModel(tmp_path / "model.keras")


def test_mismatched_features_and_grid_are_refused(tiny_artifact: tuple[Path, Path]) -> None:
    path, _ = tiny_artifact
    swapped = list(FEATURE_NAMES)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(ModelArtifactError, match="expects features"):
        LoadedModel(path, swapped)
    with pytest.raises(ModelArtifactError, match="another grid.*ncols: card 59, service 60"):
        LoadedModel(path, list(FEATURE_NAMES), Grid(GridSpec(ncols=60)).describe())


def test_missing_card_is_refused(tiny_artifact: tuple[Path, Path], tmp_path: Path) -> None:
    path, _ = tiny_artifact
    (tmp_path / "model.keras").write_bytes(path.read_bytes())
    with pytest.raises(ModelArtifactError, match="model card not found"):
        LoadedModel(tmp_path / "model.keras")


def test_the_shipped_case3_loads_and_forecasts_a_day(tmp_path: Path) -> None:
    """A fresh clone forecasts without training: the artifact matches its card."""
    from service.forecast.model import load_forecaster
    from service.forecast.tensor import assemble_inputs
    from service.settings import Settings

    settings = Settings()
    card = json.loads((settings.model_path.parent / "card.json").read_text())
    assert card["case"] == 3 and card["synthetic"] is True and card["training"]["filters"] == 36
    assert card["metrics"]["rmse_reduction_percent"] >= 15.0
    model = load_forecaster(str(settings.model_path), settings.grid)
    write_sample_day(tmp_path, dt.date(2024, 1, 9), GridSpec())
    out = model.predict(assemble_inputs(dt.date(2024, 1, 9), Settings(inbox=tmp_path)).tensor)
    assert out.shape == (24, 68, 59) and np.isfinite(out).all() and out.min() >= 0.0
    assert 0.5 < float(out.mean()) < 200.0


def test_cli_train_and_evaluate_on_an_archive(tmp_path: Path) -> None:
    """`pm25 train` and `pm25 evaluate` end to end on a five-day archive with a tiny model."""
    from click.testing import CliRunner

    from service.cli import main

    days = [dt.date(2024, 1, 6) + dt.timedelta(days=k) for k in range(5)]
    for k, day in enumerate(days):
        write_sample_day(tmp_path / "archive", day, GridSpec(), seed=k)
    runner = CliRunner()
    trained = runner.invoke(main, [
        "train", "--archive", str(tmp_path / "archive"), "--case", "1", "--start", "2024-01-06",
        "--end", "2024-01-10", "--out", str(tmp_path / "m"), "--epochs", "1", "--filters", "2",
    ])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "saved" in trained.output and (tmp_path / "m" / "card.json").is_file()
    (tmp_path / "notes.md").write_text("## Discussion\n\nTrained for one epoch only.\n")
    scored = runner.invoke(main, [
        "evaluate", "--archive", str(tmp_path / "archive"), "--model", str(tmp_path / "m" / "model.keras"),
        "--start", "2024-01-06", "--end", "2024-01-10", "--out", str(tmp_path / "report"),
        "--notes", str(tmp_path / "notes.md"), "--record",
    ])  # fmt: skip
    assert scored.exit_code == 0, scored.output
    report = (tmp_path / "report" / "REPORT.md").read_text()
    assert "Table 3" in report and "case1" in report and "raw CMAQ" in report
    assert report.rstrip().endswith("Trained for one epoch only.")
    assert "--notes" in report  # the command that made it, verbatim
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert len(metrics["models"]["case1"]["rmse_by_hour"]) == 24 and metrics["days"] == 5
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    assert card["metrics"]["test_days"] == 5 and card["metrics"]["rmse_mean"] > 0
    assert card["metrics"]["rmse_mean"] == round(metrics["models"]["case1"]["rmse_mean"], 3)
    LoadedModel(tmp_path / "m" / "model.keras", list(FEATURE_NAMES))  # checksum still holds
    assert (tmp_path / "report" / "maps_jan8_9.png").is_file()
