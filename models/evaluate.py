"""Scoring models and raw CMAQ against the analysis, and the report with the paper's figures."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict, cast

import numpy as np
import numpy.typing as npt

from models.metrics import distribution, score

if TYPE_CHECKING:
    from matplotlib.figure import Figure

F32 = npt.NDArray[np.float32]
#: A model's learning curves as Keras records them: ``loss`` and perhaps ``val_loss``.
History = dict[str, list[float]]
Statistic = Literal["min", "max", "mean", "std", "var"]
#: The columns of the paper's Table 4, in its order.
STATISTICS: tuple[Statistic, ...] = ("min", "max", "mean", "std", "var")
HourlyScore = Literal["rmse_by_hour", "spatial_rmse_by_hour"]


class Distribution(TypedDict):
    """Minimum, maximum, mean, standard deviation and variance (the paper's Table 4)."""

    min: float
    max: float
    mean: float
    std: float
    var: float


class Scores(TypedDict):
    """One forecast's scores against the truth (:func:`models.metrics.score`)."""

    rmse_by_hour: list[float]
    spatial_rmse_by_hour: list[float]
    rmse_mean: float
    spatial_rmse_mean: float
    distribution: Distribution


class ModelScores(Scores):
    """A model's scores, and its mean improvement over raw CMAQ on the same days."""

    improvement_rmse: float
    improvement_spatial_rmse: float
    rmse_reduction_percent: float


class Event(TypedDict):
    """POD, FAR and CSI of a yes/no event (``None`` where nothing was there to count)."""

    pod: float | None
    far: float | None
    csi: float | None


class Peak(TypedDict):
    """The RMSE over the cell-hours whose analysis is at least ``threshold``."""

    threshold: float
    n: int
    rmse: float | None


class Skill(TypedDict):
    """Scores where people care (issue 14), as the verification module computes them for a
    period (``service.verification.scores.period_skill``); rows of the ablation table."""

    days: int
    rmse_mean: float
    spatial_rmse_mean: float
    peak: Peak
    std: float
    band_width: int
    band: float | None
    interior: float | None
    band_ratio: float | None
    bad_or_worse: Event
    very_bad: Event
    days_worse: int | None


class Metrics(TypedDict):
    """What :func:`evaluate` measures; the report prints it and ``metrics.json`` holds it.

    ``skill`` (issue 14) has a row for raw CMAQ (``cmaq``), the baselines and every model.
    """

    period: list[str]
    days: int
    truth: Distribution
    cmaq: Scores
    models: dict[str, ModelScores]
    skill: NotRequired[dict[str, Skill]]


@dataclass(frozen=True)
class PaperNumbers:
    """The paper's numbers for one row: its Table 4 distribution and, where it gives them,
    the RMSE ranges over the 24 hours (Table 3) and the mean improvement (Table 5)."""

    distribution: Distribution
    rmse: str | None = None
    spatial_rmse: str | None = None
    improvement: tuple[float, float] | None = None


#: The paper's numbers (PAPER.md, Tables 3, 4 and 5), for side-by-side reporting.
PAPER: dict[str, PaperNumbers] = {
    "truth": PaperNumbers(
        Distribution(min=0.0014, max=518.10, mean=14.00, std=13.00, var=167.98),
    ),
    "cmaq": PaperNumbers(
        Distribution(min=0.0004, max=555.43, mean=14.71, std=15.42, var=237.81),
        rmse="10.04-10.45",
        spatial_rmse="8.24-8.57",
    ),
    "case1": PaperNumbers(
        Distribution(min=-54.00, max=119.16, mean=13.18, std=9.41, var=88.63),
        improvement=(1.78, 1.22),
    ),
    "case2": PaperNumbers(
        Distribution(min=-410.83, max=391.32, mean=14.15, std=9.74, var=94.80),
        improvement=(1.82, 1.32),
    ),
    "case3": PaperNumbers(
        Distribution(min=0.00013, max=213.02, mean=14.00, std=9.42, var=88.78),
        rmse="8.16-8.76",
        spatial_rmse="6.60-7.26",
        improvement=(1.81, 1.31),
    ),
    "case4": PaperNumbers(
        Distribution(min=0.00013, max=1330.47, mean=13.55, std=9.20, var=84.60),
        rmse="8.36-9.02",
        spatial_rmse="6.96-7.43",
        improvement=(1.57, 1.25),
    ),
}


def predict_all(model: Any, x: npt.NDArray[np.floating], batch: int = 8) -> F32:
    """Run a :class:`~models.artifact.LoadedModel` over many days (inputs on its grid, or on
    its wider window for a model with a margin: the output is on its grid)."""
    parts = [
        np.asarray(model.predict(np.asarray(x[start : start + batch])), np.float32)
        for start in range(0, x.shape[0], batch)
    ]
    return np.concatenate(parts)


def evaluate(
    predictions: dict[str, F32],
    cmaq: F32,
    truth: F32,
    dates: list[dt.date],
    skill: dict[str, Skill] | None = None,
) -> Metrics:
    """Metrics of raw CMAQ and every model over the same days (with ``skill``, its rows)."""
    # models.metrics returns plain dicts with exactly the keys of these types.
    out: Metrics = {
        "period": [dates[0].isoformat(), dates[-1].isoformat()],
        "days": len(dates),
        "truth": cast(Distribution, distribution(truth)),
        "cmaq": cast(Scores, score(cmaq, truth)),
        "models": {
            name: cast(ModelScores, score(p, truth, cmaq)) for name, p in predictions.items()
        },
    }
    if skill is not None:
        out["skill"] = skill
    return out


def card_metrics(metrics: Metrics, name: str, truth: str) -> dict[str, Any]:
    """The summary of one model's scores that its card carries (see ``record_metrics``)."""
    m = metrics["models"][name]
    return {
        "test_period": metrics["period"],
        "test_days": metrics["days"],
        "truth": truth,
        "rmse_mean": round(m["rmse_mean"], 3),
        "spatial_rmse_mean": round(m["spatial_rmse_mean"], 3),
        "cmaq_rmse_mean": round(metrics["cmaq"]["rmse_mean"], 3),
        "cmaq_spatial_rmse_mean": round(metrics["cmaq"]["spatial_rmse_mean"], 3),
        "improvement_rmse": round(m["improvement_rmse"], 3),
        "improvement_spatial_rmse": round(m["improvement_spatial_rmse"], 3),
        "rmse_reduction_percent": round(m["rmse_reduction_percent"], 2),
        "prediction_distribution": {k: round(m["distribution"][k], 5) for k in STATISTICS},
    }


def map_days(dates: list[dt.date]) -> list[int]:
    """Indices of 8 and 9 January in ``dates`` (the paper's case study)."""
    return [k for k, d in enumerate(dates) if d.month == 1 and d.day in (8, 9)]


# -- figures: each writes one PNG into ``out`` and returns its markdown image line -----------


def _save(fig: Figure, path: Path, alt: str, *, dpi: int, tight: bool = True) -> str:
    import matplotlib.pyplot as plt

    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return f"![{alt}]({path.name})"


def plot_rmse_by_hour(out: Path, metrics: Metrics) -> str:
    """RMSE and spatial RMSE of raw CMAQ and every model at each forecast hour."""
    import matplotlib.pyplot as plt

    hours = np.arange(24)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    panels: list[tuple[HourlyScore, str]] = [
        ("rmse_by_hour", "RMSE"),
        ("spatial_rmse_by_hour", "spatial RMSE"),
    ]
    for ax, (key, label) in zip(axes, panels, strict=True):
        ax.plot(hours, metrics["cmaq"][key], "k--", label="raw CMAQ")
        for name in sorted(metrics["models"]):
            ax.plot(hours, metrics["models"][name][key], label=name)
        ax.set(xlabel="forecast hour (KST)", ylabel=f"{label} (ug/m3)", title=label)
        ax.legend(fontsize=8)
    return _save(fig, out / "rmse_by_hour.png", "RMSE by hour", dpi=100)


def plot_learning_curves(out: Path, histories: dict[str, History]) -> str:
    """Training (and validation, where recorded) loss of every model by epoch."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for name, h in sorted(histories.items()):
        line = ax.plot(h["loss"], label=f"{name} train")[0]
        if "val_loss" in h:
            ax.plot(h["val_loss"], "--", color=line.get_color(), label=f"{name} validation")
    ax.set(xlabel="epoch", ylabel="MAE (scaled)", yscale="log", title="learning curves")
    ax.legend(fontsize=7)
    return _save(fig, out / "learning_curves.png", "learning curves", dpi=100)


def plot_maps(out: Path, maps: dict[str, F32]) -> str:
    """Every sixth hour of each field in ``maps`` (one row each, the truth first)."""
    import matplotlib.pyplot as plt

    rows = list(maps)
    steps = list(range(0, maps[rows[0]].shape[0], 6))
    # The truth sets the colour scale, so one wild model cannot wash the others out.
    vmax = float(np.asarray(maps[rows[0]]).max())
    fig, axes = plt.subplots(
        len(rows), len(steps), figsize=(2.1 * len(steps), 2.3 * len(rows)), squeeze=False
    )
    for i, row in enumerate(rows):
        for j, t in enumerate(steps):
            ax = axes[i][j]
            im = ax.imshow(maps[row][t], origin="lower", cmap="magma_r", vmin=0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"Jan {8 + t // 24} {t % 24:02d} KST", fontsize=8)
            if j == 0:
                ax.set_ylabel(row, fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.6, label="PM2.5 (ug/m3)", extend="max")
    # No tight layout: it cannot place a colour bar that spans every row.
    return _save(fig, out / "maps_jan8_9.png", "maps of 8-9 January", dpi=90, tight=False)


# -- tables -----------------------------------------------------------------------------------


def _or_dash(value: str | None) -> str:
    return "-" if value is None else value


def _rmse_row(label: str, scores: Scores, paper: PaperNumbers | None) -> str:
    r, s = scores["rmse_by_hour"], scores["spatial_rmse_by_hour"]
    paper_rmse = _or_dash(paper.rmse if paper else None)
    paper_spatial = _or_dash(paper.spatial_rmse if paper else None)
    return (
        f"| {label} | {min(r):.2f}-{max(r):.2f} | {np.mean(r):.2f} | {min(s):.2f}-{max(s):.2f} "
        f"| {np.mean(s):.2f} | {paper_rmse} | {paper_spatial} |"
    )


def _distribution_row(label: str, ours: Distribution, paper: PaperNumbers | None) -> str:
    cells = [f"{ours[k]:.4g}" for k in STATISTICS] + [
        f"{paper.distribution[k]:.4g}" if paper is not None else "-" for k in STATISTICS
    ]
    return f"| {label} | {' | '.join(cells)} |"


def _improvement_row(name: str, scores: ModelScores) -> str:
    paper = PAPER.get(name)
    improvement = paper.improvement if paper is not None else None
    theirs = f"{improvement[0]} / {improvement[1]}" if improvement is not None else "- / -"
    return (
        f"| {name} | {scores['improvement_rmse']:.2f} / "
        f"{scores['improvement_spatial_rmse']:.2f} | {theirs} | "
        f"{scores['rmse_reduction_percent']:.1f}% |"
    )


def tables(metrics: Metrics) -> list[str]:
    """The paper's Tables 3, 4 and 5 for our numbers beside the paper's, as markdown lines."""
    names = sorted(metrics["models"])
    models = metrics["models"]
    return [
        "## Table 3: RMSE and spatial RMSE over the 24 forecast hours (ug/m3)",
        "",
        "| | RMSE range | mean | spatial RMSE range | mean | paper RMSE | paper spatial |",
        "|---|---|---|---|---|---|---|",
        _rmse_row("raw CMAQ", metrics["cmaq"], PAPER["cmaq"]),
        *[_rmse_row(n, models[n], PAPER.get(n)) for n in names],
        "",
        "## Table 4: distribution of predictions and truth (ug/m3)",
        "",
        "| | min | max | mean | std | var | paper min | max | mean | std | var |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        _distribution_row("truth (analysis)", metrics["truth"], PAPER["truth"]),
        _distribution_row("raw CMAQ", metrics["cmaq"]["distribution"], PAPER["cmaq"]),
        *[
            # A Case 3 variant is set beside the paper's Case 3; a baseline beside nothing.
            _distribution_row(
                n,
                models[n]["distribution"],
                PAPER.get(n, None if n in BASELINES else PAPER["case3"]),
            )
            for n in names
        ],
        "",
        "## Table 5: mean improvement over raw CMAQ (RMSE / spatial RMSE, ug/m3)",
        "",
        "| | ours | paper | RMSE reduction |",
        "|---|---|---|---|",
        *[_improvement_row(n, models[n]) for n in names],
        "",
        *(
            ["## Table 6: where people care (not in the paper)", "", *skill_table(metrics["skill"])]
            if "skill" in metrics
            else []
        ),
    ]


SKILL_HEADER = [
    "| | RMSE | spatial RMSE | RMSE at analysis >= 75 | std | band RMSE | interior RMSE "
    "| band / interior | >= 36: POD / FAR / CSI | >= 76: POD / FAR / CSI | days worse than CMAQ |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]
#: The per-cell linear corrections of raw CMAQ reported beside the networks (not in the paper).
BASELINES = ("linear", "linear_hourly")
#: How the rows of the skill tables are labelled.
LABELS = {"cmaq": "raw CMAQ", "linear": "per-cell linear correction",
          "linear_hourly": "per-cell, per-hour linear correction"}  # fmt: skip


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _event(e: Event) -> str:
    return f"{_num(e['pod'])} / {_num(e['far'])} / {_num(e['csi'])}"


def skill_row(label: str, s: Skill) -> str:
    """One row of the skill table (all values in ug/m3 but the ratios and counts)."""
    worse = "-" if s["days_worse"] is None else f"{s['days_worse']} of {s['days']}"
    return (
        f"| {label} | {s['rmse_mean']:.2f} | {s['spatial_rmse_mean']:.2f} "
        f"| {_num(s['peak']['rmse'])} | {s['std']:.2f} | {_num(s['band'])} "
        f"| {_num(s['interior'])} | {_num(s['band_ratio'])} | {_event(s['bad_or_worse'])} "
        f"| {_event(s['very_bad'])} | {worse} |"
    )


def skill_table(skill: dict[str, Skill], order: list[str] | None = None) -> list[str]:
    """The skill table as markdown lines: raw CMAQ and the baselines first, then ``order``
    (default: every other row, sorted)."""
    first = [k for k in ("cmaq", *BASELINES) if k in skill]
    rest = order if order is not None else sorted(k for k in skill if k not in first)
    width = next(iter(skill.values()))["band_width"] if skill else 3
    return [
        f"RMSE and spatial RMSE are the paper's (means over the 24 hours); the band is the outer "
        f"{width} cells of the grid; POD, FAR and CSI are for the grade of each cell's daily mean "
        "(bad or worse: >= 36 ug/m3; very bad: >= 76 ug/m3); a day is worse than CMAQ when its "
        "RMSE over all cell-hours is.",
        "",
        *SKILL_HEADER,
        *[skill_row(LABELS.get(k, k), skill[k]) for k in [*first, *rest] if k in skill],
        "",
    ]


def write_ablation(
    metrics: Metrics,
    out: Path,
    order: list[str] | None = None,
    descriptions: dict[str, str] | None = None,
    commands: list[str] | None = None,
    notes: str | None = None,
) -> Path:
    """Write ``ABLATION.md``: the skill table of raw CMAQ, the baselines and every run.

    Parameters
    ----------
    metrics
        From :func:`evaluate`, with ``skill``.
    out
        The folder to write (made if missing).
    order
        The runs in the order of the table (default: sorted).
    descriptions
        What each run changes, listed under the table.
    commands, notes
        As for :func:`write_report`.
    """
    if "skill" not in metrics:
        raise ValueError("the metrics carry no skill scores (evaluate(..., skill=...))")
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Ablation: Case 3 and its variants against raw CMAQ where people care",
        "",
        f"Test period {metrics['period'][0]} .. {metrics['period'][1]} ({metrics['days']} days); "
        "truth is the PM2.5 analysis.",
        "",
    ]
    if commands:
        lines += ["Made with:", "", "```bash", *commands, "```", ""]
    lines += skill_table(metrics["skill"], order)
    if descriptions:
        lines += ["What each run changes:", ""]
        lines += [f"- **{k}**: {v}" for k, v in descriptions.items()]
        lines += [""]
    if notes:
        lines += [notes.strip(), ""]
    path = out / "ABLATION.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_report(
    metrics: Metrics,
    out: Path,
    maps: dict[str, F32] | None = None,
    histories: dict[str, History] | None = None,
    commands: list[str] | None = None,
    synthetic: bool = True,
    notes: str | None = None,
) -> Path:
    """Write ``REPORT.md``, ``metrics.json`` and the figures into ``out``.

    Parameters
    ----------
    metrics
        The scores from :func:`evaluate`.
    out
        The folder to write (made if missing).
    maps
        Fields ``(48, rows, cols)`` of 8-9 January to draw, the truth first (no maps figure
        without them).
    histories
        Each model's learning curves (no learning-curve figure without them).
    commands
        The command lines that made the report, quoted verbatim.
    synthetic
        Whether the truth is the twin's (the title and a note say so).
    notes
        Markdown written by people (how the models were trained, what the numbers mean),
        appended after the generated tables and figures.

    Returns
    -------
    Path
        The path of ``REPORT.md``.
    """
    import matplotlib

    matplotlib.use("Agg")

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    figures = [plot_rmse_by_hour(out, metrics)]
    if histories:
        figures.append(plot_learning_curves(out, histories))
    if maps:
        figures.append(plot_maps(out, maps))

    lines = [
        "# The ConvLSTM cases against raw CMAQ" + (" (SYNTHETIC twin data)" if synthetic else ""),
        "",
        f"Test period {metrics['period'][0]} .. {metrics['period'][1]} ({metrics['days']} days).",
        "Truth is the twin's PM2.5 assimilation analysis. Our numbers come from the synthetic "
        "twin, not from Korean operational data; the paper's are quoted beside them."
        if synthetic
        else "",
        "",
    ]
    if commands:
        lines += ["Made with:", "", "```bash", *commands, "```", ""]
    lines += tables(metrics)
    for figure in figures:
        lines += [figure, ""]
    if notes:
        lines += [notes.strip(), ""]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
