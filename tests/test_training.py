"""What keeps the reported skill honest: training and test days apart, scaling fitted on the
training days only, and the analysis (the truth) never among the model's inputs."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from models.scaling import MinMax
from service.cli import DATE, main
from service.features import FEATURE_NAMES, INPUT_FEATURES, TARGET
from service.forecast.tensor import assemble_inputs
from service.settings import GridSpec, Settings
from service.training.dataset import build_dataset
from service.twin.sample import write_sample_day

from .conftest import DAY

CARD = Path(__file__).resolve().parents[1] / "models" / "case3" / "card.json"


def _default(command: str, option: str) -> dt.date:
    param = next(p for p in main.commands[command].params if p.name == option)
    return DATE.convert(param.default, param, None)


def _days(start: dt.date, end: dt.date) -> int:
    return (end - start).days + 1


def test_train_and_evaluate_default_periods_are_disjoint() -> None:
    """`pm25 train` fits 2019-2021 and `pm25 evaluate` scores 2022 unless told otherwise."""
    train = (_default("train", "start"), _default("train", "end"))
    test = (_default("evaluate", "start"), _default("evaluate", "end"))
    assert train == (dt.date(2019, 1, 1), dt.date(2021, 12, 31))
    assert test == (dt.date(2022, 1, 1), dt.date(2022, 12, 31))
    assert train[0] <= train[1] < test[0] <= test[1]


def test_the_shipped_models_training_and_test_periods_are_disjoint() -> None:
    card = json.loads(CARD.read_text())
    train = [dt.date.fromisoformat(card["training"][k]) for k in ("period_start", "period_end")]
    test = [dt.date.fromisoformat(d) for d in card["metrics"]["test_period"]]
    assert train[0] <= train[1] < test[0] <= test[1]
    # Every day of each period was used, and no more: the counts match the calendar.
    assert card["training"]["samples"] == _days(*train) == 1096
    assert card["metrics"]["test_days"] == _days(*test) == 365


def _scale_pm(paths: list[Path], names: tuple[str, ...], factor: float) -> None:
    for path in paths:
        with netCDF4.Dataset(path, "a") as ds:
            for name in names:
                ds.variables[name][:] = ds.variables[name][:] * factor


@pytest.mark.slow
def test_scaling_is_fitted_on_the_training_dates_only(tmp_path: Path) -> None:
    """Train on five days of an archive whose next (test) day is dirtier than any of them:
    the card's min-max ranges are those of the five days, not of the whole archive."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from service.training.workflow import train_from_archive

    archive = tmp_path / "archive"
    days = [DAY + dt.timedelta(days=k) for k in range(6)]
    for k, day in enumerate(days):
        written = write_sample_day(archive, day, GridSpec(), seed=k)
    _scale_pm(written.cmaq, ("PM2_5", "PM10"), 3.0)  # the test day: three times the PM
    _scale_pm(written.analysis, ("PM2_5",), 3.0)
    train_end = days[-2]

    card = train_from_archive(archive, 3, days[0], train_end, tmp_path / "model",
                              cache=tmp_path / "train-cache", epochs=1, filters=2,
                              verbose=0)  # fmt: skip

    full = build_dataset(archive, days[0], days[-1], tmp_path / "full-cache", workers=1,
                         progress=False)  # fmt: skip
    train = full.select(days[0], train_end)
    assert full.dates == days and train.dates == days[:-1]
    assert card.training["period_end"] == train_end.isoformat() and card.training["samples"] == 5
    assert card.input_scaling == MinMax.fit(train.x).as_dict()
    assert card.target_scaling == MinMax.fit(np.asarray(train.y)[..., None]).as_dict()
    # ...and the whole archive's ranges are wider, so fitting on it would have shown here.
    pm25 = FEATURE_NAMES.index("pm25")
    assert MinMax.fit(full.x).high[pm25] > 2 * card.input_scaling["max"][pm25]
    assert float(np.max(full.y)) > 2 * card.target_scaling["max"][0]


def test_the_tensors_channels_are_the_twelve_cmaq_and_wrf_features() -> None:
    assert len(INPUT_FEATURES) == 12
    assert {f.source for f in INPUT_FEATURES} == {"cmaq", "wrf"}
    assert TARGET.source == "analysis" and TARGET not in INPUT_FEATURES
    card = json.loads(CARD.read_text())
    assert [f["name"] for f in card["features"]] == list(FEATURE_NAMES)
    assert card["target"]["source"] == "PM2.5 assimilation analysis"


def test_changing_the_analysis_leaves_the_input_tensor_byte_identical(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    written = write_sample_day(inbox, DAY, GridSpec())
    settings = Settings(inbox=inbox)
    before = assemble_inputs(DAY, settings)
    assert {f.kind for f in before.files} == {"cmaq", "wrf"}
    assert {Path(f.path).relative_to(inbox).parts[0] for f in before.files} == {"cmaq", "wrf"}

    _scale_pm(written.analysis, ("PM2_5",), 4.0)
    changed = assemble_inputs(DAY, settings)
    assert changed.tensor.tobytes() == before.tensor.tobytes()

    for path in written.analysis:
        path.unlink()
    gone = assemble_inputs(DAY, settings)
    assert gone.tensor.tobytes() == before.tensor.tobytes()


def test_changing_the_analysis_changes_only_the_training_target(tmp_path: Path) -> None:
    """The training data reads the analysis into Y only: X, the model's input, stays the same."""
    inbox = tmp_path / "inbox"
    written = write_sample_day(inbox, DAY, GridSpec())
    before = build_dataset(inbox, DAY, DAY, tmp_path / "a", workers=1, progress=False)
    _scale_pm(written.analysis, ("PM2_5",), 4.0)
    after = build_dataset(inbox, DAY, DAY, tmp_path / "b", workers=1, progress=False)
    assert np.asarray(after.x).tobytes() == np.asarray(before.x).tobytes()
    np.testing.assert_allclose(after.y, 4.0 * np.asarray(before.y), rtol=1e-6)
