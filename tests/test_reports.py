"""The two report writers: the model evaluation's and the twin's, on tiny synthetic numbers."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from models.evaluate import Metrics, card_metrics, evaluate, map_days, write_report
from service.twin.report import (
    ArchiveStats,
    YearSums,
    evaluate_targets,
    monthly_means,
    summarise_series,
)

DATES = [dt.date(2022, 1, 7) + dt.timedelta(days=k) for k in range(3)]


@pytest.fixture(scope="module")
def metrics() -> Metrics:
    rng = np.random.default_rng(3)
    truth = rng.gamma(2.0, 8.0, (3, 24, 4, 5)).astype(np.float32)
    cmaq = (truth * 1.3 + 2.0).astype(np.float32)
    predictions = {
        "case3": (truth + rng.normal(0.0, 2.0, truth.shape)).astype(np.float32),
        "case7": (truth + rng.normal(0.0, 4.0, truth.shape)).astype(np.float32),
    }
    return evaluate(predictions, cmaq, truth, DATES)


def test_evaluation_report_sets_the_papers_tables_beside_ours(
    metrics: Metrics, tmp_path: Path
) -> None:
    text = write_report(metrics, tmp_path, commands=["pm25 evaluate --x"]).read_text()
    assert "Test period 2022-01-07 .. 2022-01-09 (3 days)." in text
    assert "| raw CMAQ |" in text and "| 10.04-10.45 | 8.24-8.57 |" in text
    case3 = metrics["models"]["case3"]
    assert f"| case3 | {case3['improvement_rmse']:.2f} / " in text
    assert "| 1.81 / 1.31 |" in text  # the paper's Table 5 for Case 3
    assert "```bash\npm25 evaluate --x\n```" in text


def test_a_case_the_paper_lacks_gets_dashes_and_case3s_distribution(
    metrics: Metrics, tmp_path: Path
) -> None:
    lines = write_report(metrics, tmp_path).read_text().splitlines()
    rows = [line for line in lines if line.startswith("| case7 |")]
    table3, table4, table5 = rows
    assert table3.endswith("| - | - |")
    assert table4.endswith("| 0.00013 | 213 | 14 | 9.42 | 88.78 |")
    assert "| - / - |" in table5


def test_metrics_json_holds_exactly_what_evaluate_returned(
    metrics: Metrics, tmp_path: Path
) -> None:
    write_report(metrics, tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert set(metrics["models"]["case3"]) >= {"improvement_rmse", "rmse_reduction_percent"}
    assert "improvement_rmse" not in metrics["cmaq"]


def test_evaluation_figures_only_for_what_was_given(metrics: Metrics, tmp_path: Path) -> None:
    bare = write_report(metrics, tmp_path / "bare", synthetic=False).read_text()
    assert sorted(p.name for p in (tmp_path / "bare").glob("*.png")) == ["rmse_by_hour.png"]
    assert "learning curves" not in bare and "SYNTHETIC" not in bare
    maps = {"analysis": np.ones((48, 4, 5), np.float32), "case3": np.zeros((48, 4, 5), np.float32)}
    histories = {"case3": {"loss": [1.0, 0.5], "val_loss": [1.2, 0.7]}}
    full = write_report(
        metrics, tmp_path / "full", maps, histories, notes="## By hand\n\ntext\n"
    ).read_text()
    assert {p.name for p in (tmp_path / "full").glob("*.png")} == {
        "rmse_by_hour.png",
        "learning_curves.png",
        "maps_jan8_9.png",
    }
    assert "![maps of 8-9 January](maps_jan8_9.png)" in full
    assert full.rstrip().endswith("## By hand\n\ntext")


def test_card_metrics_round_the_model_scores(metrics: Metrics) -> None:
    card = card_metrics(metrics, "case3", "analysis")
    assert card["test_days"] == 3 and card["truth"] == "analysis"
    assert card["rmse_mean"] == round(metrics["models"]["case3"]["rmse_mean"], 3)
    assert list(card["prediction_distribution"]) == ["min", "max", "mean", "std", "var"]
    assert map_days(DATES) == [1, 2]


def test_year_sums_give_the_moments_of_all_values() -> None:
    rng = np.random.default_rng(1)
    days = [(rng.gamma(2.0, 8.0, (24, 3, 2)), rng.gamma(2.0, 9.0, (24, 3, 2))) for _ in range(3)]
    sums = YearSums()
    for analysis, cmaq in days:
        sums.add(analysis, cmaq)
    a = np.concatenate([d[0] for d in days])
    c = np.concatenate([d[1] for d in days])
    assert sums.n == a.size and sums.analysis_max == a.max()
    assert np.isclose(sums.analysis_mean, a.mean()) and np.isclose(sums.analysis_std, a.std())
    assert np.isclose(sums.cmaq_std, c.std())
    assert np.isclose(sums.rmse, np.sqrt(((c - a) ** 2).mean()))


def test_series_summary_counts_finite_hours_and_fills_gaps_only_when_asked() -> None:
    values = 20.0 + 10.0 * np.sin(np.arange(96) / 5.0)
    values[[10, 50]] = np.nan
    as_given = summarise_series(values)
    filled = summarise_series(values, fill_gaps=True)
    assert as_given.mean == filled.mean == pytest.approx(np.nanmean(values))
    assert np.isnan(as_given.lag1) and 0.9 < filled.lag1 <= 1.0


def _stats(seoul: np.ndarray) -> ArchiveStats:
    times = np.datetime64("2022-01-01T00", "h") + np.arange(seoul.size)
    sums = YearSums()
    sums.add(np.full((24, 2, 2), 14.0), np.full((24, 2, 2), 15.0))
    return ArchiveStats(
        years={2022: sums},
        seoul_times=times,
        seoul=seoul,
        rmse_by_hour=np.ones(24),
        mean_map=np.ones((2, 2)),
    )


def test_twin_targets_say_which_are_missed() -> None:
    seoul = 21.0 + 5.0 * np.sin(2 * np.pi * np.arange(24 * 10) / 24)
    targets = {t.name: t for t in evaluate_targets(_stats(seoul), real=None)}
    assert (
        targets["2022 analysis mean (grid)"].ok and targets["2022 analysis mean (grid)"].value == 14
    )
    assert not targets["2022 analysis std (grid)"].ok  # a constant field has no spread
    assert targets["2022 CMAQ mean bias"].value == 1.0 and targets["2022 CMAQ mean bias"].ok
    assert targets["Seoul mean"].ok and not targets["Seoul 99th percentile"].ok
    assert "Seoul monthly means, correlation with real" not in targets


def test_monthly_means_put_each_hour_in_its_calendar_month() -> None:
    times = np.array(["2021-01-31T23", "2021-02-01T00", "2022-01-15T12"], dtype="datetime64[h]")
    with pytest.warns(RuntimeWarning):  # months without data are NaN
        means = monthly_means(times, np.array([10.0, 40.0, 20.0]))
    assert means[0] == 15.0 and means[1] == 40.0 and np.isnan(means[2:]).all()
