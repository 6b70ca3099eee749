"""Issue 14's variants and issue 13's baseline: each does what it says, on tiny data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from models.artifact import LoadedModel, ModelArtifactError, ModelCard, save_artifact
from models.baseline import LinearCorrection
from models.evaluate import evaluate, write_ablation
from models.scaling import MinMax
from models.train import (
    VARIANTS,
    TrainConfig,
    high_days,
    residual_for,
    seasonal_validation,
    split_days,
    variant_config,
)
from service.settings import GridSpec
from service.training.dataset import build_dataset
from service.twin.sample import write_sample_day
from service.verification.scores import band_mask, period_skill

from .conftest import DAY

TRAIN_YEARS = [dt.date(2019, 1, 1) + dt.timedelta(days=k) for k in range(1096)]
SEASONS = {12: "DJF", 1: "DJF", 2: "DJF", 3: "MAM", 4: "MAM", 5: "MAM", 6: "JJA", 7: "JJA",
           8: "JJA", 9: "SON", 10: "SON", 11: "SON"}  # fmt: skip


# -- validation and sampling --------------------------------------------------------------------


def test_seasonal_validation_holds_out_whole_weeks_of_every_season_of_every_year() -> None:
    held = seasonal_validation(TRAIN_YEARS)
    days = [d for d, h in zip(TRAIN_YEARS, held, strict=True) if h]
    assert {(d.year, SEASONS[d.month]) for d in days} == {
        (y, s) for y in (2019, 2020, 2021) for s in ("DJF", "MAM", "JJA", "SON")
    }
    assert 0.18 < held.mean() < 0.22  # about the paper's 20%
    weeks = {(d - TRAIN_YEARS[0]).days // 7 for d in days}
    assert all(held[7 * w : 7 * w + 7].all() for w in weeks if 7 * w + 7 <= len(held))


def test_the_papers_split_is_the_last_fifth_and_sees_no_winter() -> None:
    y = np.zeros((len(TRAIN_YEARS), 1, 1, 1), np.float32)
    train_idx, val_idx = split_days(len(TRAIN_YEARS), TrainConfig(), TRAIN_YEARS, y)
    assert val_idx[0] == int(np.floor(len(TRAIN_YEARS) * 0.8)) == train_idx[-1] + 1
    assert val_idx[-1] == 1095
    assert {TRAIN_YEARS[k].month for k in val_idx} == set(range(5, 13))  # late May..December


def test_seasonal_split_and_oversampling_keep_training_and_validation_apart() -> None:
    rng = np.random.default_rng(0)
    y = rng.gamma(2.0, 8.0, (len(TRAIN_YEARS), 2, 3, 3)).astype(np.float32)
    y[::10] += 100.0  # every tenth day is a high day
    config = variant_config("all")
    train_idx, val_idx = split_days(len(TRAIN_YEARS), config, TRAIN_YEARS, y)
    assert not set(train_idx) & set(val_idx)
    assert set(train_idx) | set(val_idx) == set(range(len(TRAIN_YEARS)))
    high = set(np.flatnonzero(high_days(y, 75.0, 0.01)))
    counts = np.bincount(train_idx, minlength=len(TRAIN_YEARS))
    assert all(counts[k] == 3 for k in high - set(val_idx))
    assert all(counts[k] == 1 for k in set(train_idx) - high)
    assert all(counts[k] == 0 for k in val_idx)  # high validation days are not repeated


def test_every_variant_is_one_change_and_all_is_their_union() -> None:
    paper = TrainConfig()
    assert paper.describe() == {} and variant_config("case3") == paper
    for name, change in VARIANTS.items():
        assert variant_config(name).describe() == change == variant_config(name).variant(), name
    assert variant_config("case3", batch_size=2).variant() == {}  # the same network and data
    first = ("val_seasonal", "margin", "weighted_loss", "oversample", "residual")
    assert VARIANTS["all"] == {k: v for n in first for k, v in VARIANTS[n].items()}
    assert VARIANTS["residual_mse"] == {"validation": "seasonal", "residual": True, "loss": "mse"}
    with pytest.raises(ValueError, match="unknown run"):
        variant_config("case5")
    extra = variant_config("all+oversample=5+seed=1")
    assert extra.oversample == 5 and extra.seed == 1 and extra.residual and extra.margin == 4
    assert variant_config("residual+loss=weighted_mae").loss == "weighted_mae"
    assert variant_config("all+residual=false").residual is False  # not the truthy "false"
    assert variant_config("case3+loss_power=3").loss_power == 3.0
    for bad in ("all+loss=msee", "all+seed=one", "all+residual=maybe"):
        with pytest.raises(ValueError, match="is not a valid"):
            variant_config(bad)
    with pytest.raises(ValueError, match="not OPTION=VALUE"):
        variant_config("all+colour=3")


def test_the_cli_offers_exactly_the_variants() -> None:
    from service.cli import main

    option = next(p for p in main.commands["train"].params if p.name == "variant")
    assert sorted(option.type.choices) == sorted(VARIANTS)


# -- the network's pieces ----------------------------------------------------------------------


def test_margin_model_crops_to_the_grid_so_the_loss_never_sees_the_margin() -> None:
    import keras

    from models.convlstm import build_model

    m = 2
    model = build_model(3, (24, 14, 13, 12), filters=1, margin=m)
    assert tuple(model.output.shape) == (None, 24, 10, 9, 1)
    wide = keras.Model(model.input, model.get_layer("output").output)  # before the crop
    x = np.random.default_rng(1).random((2, 24, 14, 13, 12)).astype(np.float32)
    out = np.asarray(model(x))
    np.testing.assert_array_equal(out, np.asarray(wide(x))[:, :, m:-m, m:-m])
    # What the loss compares with the (service-grid) target: the margin's outputs are not in it.
    y = np.zeros((2, 24, 10, 9, 1), np.float32)
    loss = float(keras.losses.MeanAbsoluteError()(y, out))
    assert loss == pytest.approx(float(np.abs(np.asarray(wide(x))[:, :, m:-m, m:-m]).mean()))


def test_residual_model_returns_cmaq_when_the_network_part_is_zero() -> None:
    from models.convlstm import build_model

    rng = np.random.default_rng(2)
    x = rng.gamma(2.0, 10.0, (3, 24, 6, 5, 12)).astype(np.float32)
    y = rng.gamma(2.0, 8.0, (3, 24, 6, 5)).astype(np.float32)
    xs, ys = MinMax.fit(x), MinMax.fit(y[..., None])
    model = build_model(3, (24, 6, 5, 12), filters=1, residual=residual_for(xs, ys, 5))
    out_layer = model.get_layer("output")
    out_layer.set_weights([np.zeros_like(w) for w in out_layer.get_weights()])
    pred = ys.inverse(np.asarray(model(xs.transform(x))))[..., 0]
    np.testing.assert_allclose(pred, x[..., 5], rtol=1e-4, atol=1e-3)


def test_weighted_loss_weighs_high_concentrations_more() -> None:
    from models.layers import WeightedMAE

    span = 300.0
    loss = WeightedMAE(low=0.0, span=span)  # scaled target = ug/m3 / 300
    err = 3.0 / span

    def at(conc: float) -> float:
        y = np.full((1, 4, 1), conc / span, np.float32)
        return float(loss(y, y + err))

    assert at(150.0) == pytest.approx(5.0 * at(0.0), rel=1e-4)  # 1 + (150 / 75)^2
    assert at(75.0) == pytest.approx(2.0 * at(0.0), rel=1e-4)
    assert at(0.0) == pytest.approx(err, rel=1e-4)  # plain MAE in clean air


def _card(margin: int, rows: int, cols: int) -> ModelCard:
    return ModelCard(
        name="tiny", version="0", case=3,
        features=[{"name": f"f{k}", "unit": "-"} for k in range(12)],
        target={"name": "pm25", "unit": "ug/m3"}, grid={"nrows": rows, "ncols": cols},
        hours=24, input_scaling=MinMax((0.0,) * 12, (1.0,) * 12).as_dict(),
        target_scaling={"min": [0.0], "max": [1.0]}, training={}, data_source="test",
        synthetic=True, margin=margin,
    )  # fmt: skip


def test_a_margin_artifact_forecasts_on_the_grid_from_either_window(tmp_path: Path) -> None:
    from models.convlstm import build_model

    m, rows, cols = 2, 6, 5
    save_artifact(
        build_model(3, (24, rows + 2 * m, cols + 2 * m, 12), 1, margin=m),
        _card(m, rows, cols),
        tmp_path,
    )
    model = LoadedModel(tmp_path)
    x = np.random.default_rng(3).random((24, rows + 2 * m, cols + 2 * m, 12)).astype(np.float32)
    assert model.predict(x).shape == (24, rows, cols)
    inner = x[:, m:-m, m:-m]
    assert model.predict(inner).shape == (24, rows, cols)  # the daily run's tensor, edges repeated
    with pytest.raises(ModelArtifactError, match="a margin of 2 cells"):
        model.predict(x[:, 1:, 1:])
    card = (tmp_path / "card.json").read_text().replace('"margin": 2', '"margin": 0')
    (tmp_path / "card.json").write_text(card)
    with pytest.raises(ModelArtifactError, match="card was edited"):
        LoadedModel(tmp_path)


# -- baseline and scores -----------------------------------------------------------------------


def test_linear_correction_recovers_a_known_intercept_and_slope_per_cell() -> None:
    rng = np.random.default_rng(4)
    cmaq = rng.gamma(2.0, 10.0, (20, 24, 3, 4))
    a = rng.uniform(-2.0, 5.0, (3, 4))
    b = rng.uniform(0.3, 1.2, (3, 4))
    fit = LinearCorrection.fit(cmaq, a + b * cmaq, chunk=6)
    np.testing.assert_allclose(fit.a, a, atol=1e-8)
    np.testing.assert_allclose(fit.b, b, atol=1e-10)
    hourly = LinearCorrection.fit(cmaq, a + b * cmaq, per_hour=True)
    assert hourly.per_hour and hourly.a.shape == (24, 3, 4)
    np.testing.assert_allclose(hourly.b, np.broadcast_to(b, (24, 3, 4)), atol=1e-10)
    flat = LinearCorrection.fit(np.full((2, 24, 1, 1), 7.0), np.full((2, 24, 1, 1), 3.0))
    assert (flat.a.item(), flat.b.item()) == (3.0, 0.0)  # constant CMAQ: the mean analysis
    assert fit.apply(np.full((1, 24, 3, 4), -1e6)).min() == 0.0  # no negative concentration


def test_band_and_interior_rmse_are_apart_and_days_worse_are_counted() -> None:
    truth = np.full((4, 24, 10, 12), 20.0)
    forecast = truth.copy()
    forecast[:, :, band_mask((10, 12), 3)] += 4.0  # errors only in the outer three cells
    reference = truth + 1.0
    s = period_skill(forecast, truth, reference)
    assert s["band"] == pytest.approx(4.0) and s["interior"] == 0.0
    assert s["band_ratio"] is None  # a perfect interior: the ratio is undefined
    assert s["days_worse"] == 4 and period_skill(truth, truth, reference)["days_worse"] == 0
    assert int(band_mask((10, 12), 3).sum()) == 10 * 12 - 4 * 6


def test_daily_mean_events_give_the_expected_pod_far_and_csi() -> None:
    truth = np.full((2, 24, 8, 8), 10.0)
    truth[0, :, 0, :2] = 80.0  # day 1: two cells very bad
    forecast = np.full_like(truth, 10.0)
    forecast[0, :, 0, 0] = 90.0  # one hit, one miss
    forecast[1, :, 1, 1] = 100.0  # one false alarm
    s = period_skill(forecast, truth)
    assert s["very_bad"]["pod"] == 0.5 and s["very_bad"]["far"] == 0.5
    assert s["very_bad"]["csi"] == pytest.approx(1 / 3)
    assert s["peak"]["n"] == 2 * 24 and s["std"] == pytest.approx(float(np.std(forecast)))


def test_the_ablation_table_lists_cmaq_the_baseline_and_every_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    truth = rng.gamma(2.0, 12.0, (3, 24, 8, 8)).astype(np.float32)
    cmaq = (truth * 1.4).astype(np.float32)
    preds = {"linear": truth * 1.1, "case3": truth + 1.0, "all": truth + 0.5}
    skill = {"cmaq": period_skill(cmaq, truth)}
    skill.update({k: period_skill(p, truth, cmaq) for k, p in preds.items()})
    metrics = evaluate(preds, cmaq, truth, [DAY + dt.timedelta(days=k) for k in range(3)], skill)  # type: ignore[arg-type]
    text = write_ablation(metrics, tmp_path, ["case3", "all"], {"all": "everything"}).read_text()
    rows = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["| raw CMAQ", "| per-cell linear correction", "| case3", "| all"]
    assert "| 0 of 3 |" in text and "- **all**: everything" in text


# -- data ----------------------------------------------------------------------------------------


def test_the_margin_datasets_interior_is_the_service_grids_dataset(tmp_path: Path) -> None:
    write_sample_day(tmp_path / "inbox", DAY, GridSpec())
    grid = build_dataset(tmp_path / "inbox", DAY, DAY, tmp_path / "a", workers=1, progress=False)
    wide = build_dataset(tmp_path / "inbox", DAY, DAY, tmp_path / "b", workers=1, progress=False,
                         margin=4)  # fmt: skip
    assert wide.x.shape[2:4] == (68 + 8, 59 + 8) and wide.margin == 4
    assert np.asarray(wide.with_margin(0).x).tobytes() == np.asarray(grid.x).tobytes()
    assert np.asarray(wide.y).tobytes() == np.asarray(grid.y).tobytes()
    np.testing.assert_array_equal(wide.cmaq, grid.cmaq)


@pytest.mark.slow
def test_the_all_variant_trains_saves_and_serves_through_the_services_loader(
    tmp_path: Path,
) -> None:
    """One epoch of a 1-filter Case 3 with every change on 14 sample days; the artifact loads
    through the daily run's loader and forecasts on the service grid from its tensor."""
    from service.forecast.model import load_forecaster
    from service.forecast.tensor import assemble_inputs
    from service.settings import Settings
    from service.training.workflow import train_on_dataset

    days = [DAY + dt.timedelta(days=k) for k in range(14)]
    for k, day in enumerate(days):
        write_sample_day(tmp_path / "archive", day, GridSpec(), seed=k)
    data = build_dataset(tmp_path / "archive", days[0], days[-1], tmp_path / "cache",
                         workers=1, progress=False, margin=4)  # fmt: skip
    config = dataclasses.replace(
        variant_config("all", epochs=1, filters=1, batch_size=4, verbose=0),
        validation_every_weeks=2,  # 14 days: the second week is the validation set
        oversample_threshold=20.0,
    )
    card = train_on_dataset(data, 3, tmp_path / "model", config=config, grid=GridSpec(),
                            synthetic=True, archive=tmp_path / "archive")  # fmt: skip
    assert card.name == (
        "convlstm-case3+validation=seasonal+validation_every_weeks=2+margin=4+loss=weighted_mae"
        "+oversample=3+oversample_threshold=20.0+residual"
    )
    assert card.margin == 4 and card.training["options"]["batch_size"] == 4
    assert card.training["validation_days"] == 7 and card.training["options"]["residual"]
    forecaster = load_forecaster(str(tmp_path / "model" / "model.keras"), GridSpec())
    tensor = assemble_inputs(DAY, Settings(inbox=tmp_path / "archive")).tensor
    pm25 = forecaster.predict(tensor)
    assert pm25.shape == (24, 68, 59) and float(pm25.min()) >= 0.0


def test_the_daily_run_feeds_a_margin_model_its_wider_window(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A model with an input margin gets the files' own values beyond the grid, not repeated
    edges; where the files do not reach that far, the grid's tensor, with a warning."""
    from models.convlstm import build_model
    from service.features import INPUT_FEATURES
    from service.forecast.model import load_forecaster
    from service.forecast.tensor import assemble_inputs
    from service.grid import Grid
    from service.jobs import _wide_tensor, find_inputs, run_daily_forecast
    from service.settings import Settings
    from service.storage.db import make_engine, session_factory
    from service.storage.migrate import upgrade

    m, spec = 2, GridSpec()
    card = dataclasses.replace(
        _card(m, spec.nrows, spec.ncols),
        features=[{"name": f.name, "unit": f.unit} for f in INPUT_FEATURES],
        grid=Grid(spec).describe(),
        input_scaling=MinMax((0.0,) * 12, (1.0e5,) * 12).as_dict(),
    )
    shape = (24, spec.nrows + 2 * m, spec.ncols + 2 * m, 12)
    save_artifact(build_model(3, shape, 1, margin=m), card, tmp_path / "model")
    write_sample_day(tmp_path / "inbox", DAY, spec)
    url = f"sqlite:///{tmp_path}/pm25.sqlite"
    upgrade(url)
    settings = Settings(inbox=tmp_path / "inbox", database_url=url, input_settle_seconds=0,
                        model_path=tmp_path / "model" / "model.keras")  # fmt: skip
    engine = make_engine(url)
    out = run_daily_forecast(DAY, settings=settings, sessions=session_factory(engine))
    engine.dispose()
    assert out.status.value == "succeeded", out.message
    assert "ingest_margin" in out.timings

    grid, paths = Grid(spec), find_inputs(DAY, settings)
    model = load_forecaster(str(settings.model_path), spec)
    inner = assemble_inputs(DAY, settings, grid, paths=paths).tensor
    wide, note = _wide_tensor(DAY, settings, grid, paths, model.card.margin, inner)
    assert wide.shape == shape and note is None
    np.testing.assert_array_equal(wide[:, m:-m, m:-m], inner)
    repeated = np.pad(inner, ((0, 0), (m, m), (m, m), (0, 0)), mode="edge")
    assert not np.array_equal(wide, repeated)  # the files' own values beyond the grid

    with caplog.at_level("WARNING", logger="service.jobs"):  # beyond what the CMAQ files cover
        fallback, note = _wide_tensor(DAY, settings, grid, paths, 60, inner)
    np.testing.assert_array_equal(fallback, inner)
    assert "do not cover the model's margin of 60 cells" in caplog.text
    assert note is not None and "edges were repeated" in note
