"""The artifact cannot be edited silently: everything that changes a forecast is checksummed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.artifact import LoadedModel, ModelArtifactError, ModelCard, read_card
from service.features import FEATURE_NAMES
from service.forecast.check import ForecastValidationError, validate_forecast
from service.grid import Grid
from service.settings import GridSpec, Settings

SHIPPED = Settings().model_path


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    """A copy of the shipped default artifact (models/case3_all) that a test may edit."""
    for name in ("model.keras", "card.json"):
        shutil.copy(SHIPPED.parent / name, tmp_path / name)
    return tmp_path / "model.keras"


def _edit_card(path: Path, change: dict[str, object], *, reseal: bool = False) -> None:
    card_path = path.parent / "card.json"
    card = json.loads(card_path.read_text())
    card.update(change)
    if reseal:  # a consistent card for other values: the checksum matches the edit
        card["artifact_sha256"] = ModelCard(**card).output_sha256()
    card_path.write_text(json.dumps(card))


def test_the_shipped_card_is_sealed() -> None:
    card = read_card(SHIPPED)
    assert len(card.artifact_sha256) == 64 and card.artifact_sha256 == card.output_sha256()


@pytest.mark.parametrize("field", ["input_scaling", "target_scaling"])
def test_an_edited_scaling_is_refused(artifact: Path, field: str) -> None:
    card = read_card(artifact)
    scaling = getattr(card, field)
    scaling["max"][0] *= 2  # every forecast would change
    _edit_card(artifact, {field: scaling})
    with pytest.raises(ModelArtifactError, match="card was edited"):
        LoadedModel(artifact, list(FEATURE_NAMES), Grid(GridSpec()).describe())


def test_an_edited_feature_order_is_refused_even_if_the_service_agrees(artifact: Path) -> None:
    card = read_card(artifact)
    features = card.features[::-1]
    _edit_card(artifact, {"features": features})
    with pytest.raises(ModelArtifactError, match="card was edited"):
        LoadedModel(artifact, [f["name"] for f in features])


def test_the_whole_grid_is_checked_not_only_its_shape(artifact: Path) -> None:
    card = read_card(artifact)
    moved = {**card.grid, "xorig_m": card.grid["xorig_m"] + 9000.0}  # same shape, shifted
    _edit_card(artifact, {"grid": moved}, reseal=True)
    with pytest.raises(ModelArtifactError, match="xorig_m: card -135000.0, service -144000.0"):
        LoadedModel(artifact, list(FEATURE_NAMES), Grid(GridSpec()).describe())


def test_a_card_without_the_artifact_checksum_is_refused(artifact: Path) -> None:
    _edit_card(artifact, {"artifact_sha256": ""})
    with pytest.raises(ModelArtifactError, match="no artifact_sha256"):
        LoadedModel(artifact)


def test_descriptive_fields_stay_editable(artifact: Path) -> None:
    _edit_card(artifact, {"metrics": {"note": "re-scored"}, "data_source": "edited text"})
    model = LoadedModel(artifact, list(FEATURE_NAMES), Grid(GridSpec()).describe())
    assert model.card.metrics == {"note": "re-scored"}


def test_forecasts_have_their_own_plausible_range(grid: Grid) -> None:
    field = np.full((24, *grid.shape), 20.0, np.float32)
    validate_forecast(field, grid)
    field[5, 10, 10] = 1500.0  # below the inputs' 2,000 cap, far above any Korean record
    with pytest.raises(ForecastValidationError, match=r"outside the plausible 0\.\.1000"):
        validate_forecast(field, grid)


def test_junk_weights_under_a_matching_card_are_named_not_found_missing(artifact: Path) -> None:
    artifact.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 64)  # a zip header, then junk
    card = read_card(artifact)
    from models.artifact import sha256_file

    _edit_card(artifact, {"weights_sha256": sha256_file(artifact)}, reseal=True)
    with pytest.raises(ModelArtifactError, match="exists .* but is not a loadable Keras model"):
        LoadedModel(artifact)
    assert card.name.startswith("convlstm-case3")  # read before the weights were swapped
