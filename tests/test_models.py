"""The ConvLSTM: architecture per case, the artifact and its card, a tiny training run."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import numpy.typing as npt
import pytest

from models.artifact import LoadedModel, ModelArtifactError
from models.convlstm import build_model
from models.metrics import rmse_by_hour, score, spatial_rmse_by_hour
from models.scaling import MinMax
from service.features import FEATURE_NAMES
from service.grid import Grid
from service.settings import GridSpec
from service.twin.sample import write_sample_day

from .conftest import DAY

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


def test_tiny_training_run_writes_a_self_describing_artifact(tiny_model: Path) -> None:
    card = json.loads((tiny_model.parent / "card.json").read_text())
    assert card["case"] == 3 and card["synthetic"] is True and "SYNTHETIC" in card["data_source"]
    assert [f["name"] for f in card["features"]] == list(FEATURE_NAMES)
    assert card["features"][0]["unit"] == "ppm" and card["grid"]["ncols"] == 59
    assert len(card["input_scaling"]["min"]) == 12 and card["training"]["epochs_run"] == 1
    assert card["training"]["period_start"] == "2024-01-09"
    assert card["training"]["period_end"] == "2024-01-10" and card["training"]["samples"] == 2
    assert "keras" in card["library_versions"]
    assert (tiny_model.parent / "history.json").is_file()


@pytest.fixture(scope="module", params=["case3", "case3_all"])
def shipped(request: pytest.FixtureRequest) -> LoadedModel:
    """Each shipped model (the paper's Case 3 and the default), loaded the way the service
    loads it (checksum and card checked)."""
    from service.settings import MODELS

    path = MODELS / request.param / "model.keras"
    return LoadedModel(path, list(FEATURE_NAMES), Grid(GridSpec()).describe())


def test_the_default_model_is_case3_with_the_ablations_changes() -> None:
    from service.settings import MODELS, Settings

    assert Settings().model_path == MODELS / "case3_all" / "model.keras"
    card = json.loads((MODELS / "case3_all" / "card.json").read_text())
    assert card["case"] == 3 and card["margin"] == 4 and card["synthetic"] is True
    assert card["training"]["options"] == {
        "validation": "seasonal",
        "margin": 4,
        "loss": "weighted_mae",
        "oversample": 3,
        "residual": True,
    }
    paper = json.loads((MODELS / "case3" / "card.json").read_text())
    assert paper["training"]["options"] == {} and paper["name"] == "convlstm-case3"


@pytest.fixture(scope="module")
def sample_tensor(tmp_path_factory: pytest.TempPathFactory) -> npt.NDArray[np.float32]:
    from service.forecast.tensor import assemble_inputs
    from service.settings import Settings

    inbox = tmp_path_factory.mktemp("inbox")
    write_sample_day(inbox, DAY, GridSpec())
    return assemble_inputs(DAY, Settings(inbox=inbox)).tensor


def _network(model: LoadedModel, scaled: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The bare network's output on already scaled inputs, in the card's PM2.5 units."""
    from models.artifact import pad_margin

    lo, hi = model.card.target_scaling["min"][0], model.card.target_scaling["max"][0]
    wide = pad_margin(scaled[None], model.card.margin)  # no-op without a margin
    raw = np.asarray(model.model(wide, training=False))[0, ..., 0]
    return (raw * (hi - lo) + lo).astype(np.float32)


# Mean absolute change of each shipped model's forecast (ug/m3) on the sample day, measured with
# Keras 3.15 on TensorFlow 2.20 (CPU), models of the twin's fourth calibration. Case 3 (forecast
# mean 7.9): feeding unscaled inputs 16.2; swapping pm25/pm10 0.33, temperature/humidity 17.7,
# co/no2 5.76. The default case3_all (mean 4.3): unscaled 4,409; swaps 3.21, 4.16 and 4.32. The
# thresholds are about a quarter of the smaller.
UNSCALED_DIFF = 3.5


def test_predict_scales_the_inputs_with_the_cards_ranges(
    shipped: LoadedModel, sample_tensor: npt.NDArray[np.float32]
) -> None:
    lo = np.asarray(shipped.card.input_scaling["min"], np.float32)
    hi = np.asarray(shipped.card.input_scaling["max"], np.float32)
    out = shipped.predict(sample_tensor)
    assert out.shape == (24, 68, 59) and out.dtype == np.float32
    expected = _network(shipped, (sample_tensor - lo) / (hi - lo))
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-3)
    # Without the scaling the forecast is another one entirely: the check above can fail.
    assert float(np.abs(_network(shipped, sample_tensor) - out).mean()) > UNSCALED_DIFF


@pytest.mark.parametrize(
    "a, b, least", [("pm25", "pm10", 0.07), ("temperature", "humidity", 0.8), ("co", "no2", 0.8)]
)
def test_the_forecast_depends_on_the_channel_order(
    shipped: LoadedModel, sample_tensor: npt.NDArray[np.float32], a: str, b: str, least: float
) -> None:
    """Two channels swapped give another forecast: the card's feature order must be checked."""
    i, j = FEATURE_NAMES.index(a), FEATURE_NAMES.index(b)
    swapped = sample_tensor.copy()
    swapped[..., [i, j]] = sample_tensor[..., [j, i]]
    diff = float(np.abs(shipped.predict(swapped) - shipped.predict(sample_tensor)).mean())
    assert diff > least, (a, b, diff)


def test_predict_refuses_a_tensor_of_the_wrong_shape(
    shipped: LoadedModel, sample_tensor: npt.NDArray[np.float32]
) -> None:
    for bad in (sample_tensor[..., :11], sample_tensor[:, :67], sample_tensor[:23]):
        with pytest.raises(ModelArtifactError, match="does not match the card's"):
            shipped.predict(bad)
    batch = shipped.predict(np.stack([sample_tensor, sample_tensor[::-1]]))
    assert batch.shape == (2, 24, 68, 59)
    np.testing.assert_allclose(batch[0], shipped.predict(sample_tensor), rtol=1e-4, atol=1e-3)


def test_changed_weights_are_refused(tiny_model: Path, tmp_path: Path) -> None:
    (tmp_path / "model.keras").write_bytes(tiny_model.read_bytes() + b"x")
    (tmp_path / "card.json").write_bytes((tiny_model.parent / "card.json").read_bytes())
    with pytest.raises(ModelArtifactError, match="does not match the card"):
        LoadedModel(tmp_path / "model.keras")


def test_mismatched_features_and_grid_are_refused(tiny_model: Path) -> None:
    swapped = list(FEATURE_NAMES)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(ModelArtifactError, match="expects features"):
        LoadedModel(tiny_model, swapped)
    with pytest.raises(ModelArtifactError, match="another grid.*ncols: card 59, service 60"):
        LoadedModel(tiny_model, list(FEATURE_NAMES), Grid(GridSpec(ncols=60)).describe())


def test_missing_card_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    (tmp_path / "model.keras").write_bytes(tiny_model.read_bytes())
    with pytest.raises(ModelArtifactError, match="model card not found"):
        LoadedModel(tmp_path / "model.keras")


# Each shipped model against raw CMAQ on one week of the twin's test year: seed 0, the world they
# were trained on (2019-2021), in 2022, which they never saw; one simulation block, so the week
# is written in one go; a margin model reads the wider window, as the daily run does. Metrics:
# the card's, mean hourly RMSE and mean spatial RMSE against the analysis; reductions below raw
# CMAQ's, measured with Keras 3.15 on TensorFlow 2.20 (CPU):
#   this week (2022-01-17..23), twin of the fourth calibration: Case 3 16.2% hourly (11.29 vs
#   CMAQ's 13.47), 19.1% spatial (10.62 vs 13.13); case3_all 23.0% (10.38) and 23.0% (10.11).
#   Over the whole of 2022 (the cards): Case 3 20% and 28%, case3_all 23% and 24%. Weekly
#   hourly skill swings with the heavy days (an earlier Case 3 ranged from -21% to 49% over
#   other weeks and seeds).
# The test asks, on this week of seed 0 (deterministic), for both reductions above a floor that
# a model fed unscaled or swapped inputs falls far below.
SKILL_WEEK = [dt.date(2022, 1, 17) + dt.timedelta(days=k) for k in range(7)]
MIN_RMSE_REDUCTION_PERCENT = 5.0
MIN_SPATIAL_REDUCTION_PERCENT = 15.0


@pytest.mark.slow
def test_each_shipped_model_beats_raw_cmaq_on_a_test_week(
    shipped: LoadedModel, tmp_path: Path
) -> None:
    from service.forecast.tensor import assemble_inputs, load_truth
    from service.settings import Settings
    from service.twin.archive import generate

    assert dt.date.fromisoformat(shipped.card.training["period_end"]) < SKILL_WEEK[0]
    generate(GridSpec(), SKILL_WEEK[0], SKILL_WEEK[-1], tmp_path, seed=0, progress=False)
    settings = Settings(inbox=tmp_path)
    m = shipped.card.margin  # a margin model reads the wider window, as the daily run does
    window = Grid(GridSpec().widened(m))
    inputs = [assemble_inputs(day, settings, window).tensor for day in SKILL_WEEK]
    truth = np.stack([load_truth(day, settings).data["pm25"].values for day in SKILL_WEEK])
    forecast = np.stack([shipped.predict(x) for x in inputs])
    interior = (slice(m, m + truth.shape[2]), slice(m, m + truth.shape[3]))
    cmaq = np.stack([x[:, *interior, FEATURE_NAMES.index("pm25")] for x in inputs])
    skill = score(forecast, truth, baseline=cmaq)
    cmaq_rmse = skill["rmse_mean"] + skill["improvement_rmse"]
    cmaq_spatial = skill["spatial_rmse_mean"] + skill["improvement_spatial_rmse"]
    spatial_reduction = 100 * (1 - skill["spatial_rmse_mean"] / cmaq_spatial)
    found = (
        f"RMSE {skill['rmse_mean']:.2f} against raw CMAQ's {cmaq_rmse:.2f} "
        f"({skill['rmse_reduction_percent']:.1f}% lower); spatial RMSE "
        f"{skill['spatial_rmse_mean']:.2f} against {cmaq_spatial:.2f} ({spatial_reduction:.1f}% lower)"
    )
    assert skill["rmse_reduction_percent"] >= MIN_RMSE_REDUCTION_PERCENT, found
    assert spatial_reduction >= MIN_SPATIAL_REDUCTION_PERCENT, found


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["case3", "case3_all"])
def test_pm25_model_path_picks_the_model_and_the_run_names_it(
    folder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daily run with each shipped model, picked by ``PM25_MODEL_PATH``; the API's run
    metadata names the model that made the forecast (its card's name and checksum)."""
    from fastapi.testclient import TestClient

    from service.api.app import create_app
    from service.settings import MODELS, Settings

    from .conftest import published_database

    path = MODELS / folder / "model.keras"
    monkeypatch.setenv("PM25_MODEL_PATH", str(path))
    assert Settings().model_path == path
    card = json.loads((path.parent / "card.json").read_text())
    settings = published_database(
        tmp_path, Settings().model_path, "model-Test-token-0123456789-abcd"
    )
    with TestClient(create_app(settings)) as client:
        run = client.get(f"/v1/forecasts/{DAY.isoformat()}/grid").json()["run"]
    assert (
        run["model"]["name"] == card["name"] and run["model"]["sha256"] == card["artifact_sha256"]
    )
    assert run["trained_on_synthetic_data"] is True and run["cmaq_fallback"] is False
    assert ("residual" in run["model"]["name"]) is (folder == "case3_all")
