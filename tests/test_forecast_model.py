"""The daily run's model: the fused one-day graph forecasts as the Keras model does."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from service.forecast.model import (
    FusedForecaster,
    UnsupportedNetworkError,
    fused_network,
    load_forecaster,
)
from service.forecast.tensor import assemble_inputs
from service.settings import GridSpec, Settings
from service.twin.sample import write_sample_day

from .conftest import DAY


def test_the_fused_graph_forecasts_as_the_keras_model(tmp_path: Path, tiny_model: Path) -> None:
    write_sample_day(tmp_path, DAY, GridSpec())
    tensor = assemble_inputs(DAY, Settings(inbox=tmp_path)).tensor
    model = load_forecaster(str(tiny_model), GridSpec())
    assert isinstance(model, FusedForecaster)
    fused, keras = model.predict(tensor), model.loaded.predict(tensor)
    assert fused.shape == keras.shape == (24, 68, 59) and fused.dtype == np.float32
    np.testing.assert_allclose(fused, keras, rtol=0, atol=1e-4)
    # a batch of days is the loaded model's own path, unchanged
    batch = model.predict(np.stack([tensor, tensor]))
    np.testing.assert_array_equal(batch, model.loaded.predict(np.stack([tensor, tensor])))


class Dense:
    name = "dense"

    def get_config(self) -> dict[str, object]:
        return {}


def test_a_network_it_does_not_reproduce_runs_as_keras() -> None:
    card = SimpleNamespace(hours=24, grid={"nrows": 68, "ncols": 59}, features=[0] * 12)
    loaded = SimpleNamespace(model=SimpleNamespace(layers=[Dense()]), card=card, path="m")
    with pytest.raises(UnsupportedNetworkError, match="Dense"):
        fused_network(loaded.model, card)  # type: ignore[arg-type]
    assert FusedForecaster.of(loaded) is loaded


def test_a_graph_that_fails_on_the_probe_falls_back_to_keras(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The graph compiles on its first call, the probe: a failure there is not the run's."""
    from models.artifact import LoadedModel
    from service.forecast import model as forecast_model

    def broken(model: object, card: object) -> object:
        def network(x: object) -> object:
            raise RuntimeError("XLA compilation failed")

        return network

    monkeypatch.setattr(forecast_model, "fused_network", broken)
    loaded = LoadedModel(tiny_model)
    assert FusedForecaster.of(loaded) is loaded
