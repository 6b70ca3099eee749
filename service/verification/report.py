"""``pm25 verify --report``: the verified scores of a period as markdown with figures.

Mirrors docs/model/REPORT.md (the paper's Table 3 and Table 5 with the paper's numbers beside
ours, then the figures), so the offline evaluation of the model and the operational
verification of what was published can be read side by side; then what only verification has:
persistence, skill, the grade contingency tables, the peak hours, and the days on which the
model was worse than raw CMAQ.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.evaluate import PAPER
from service.verification.scores import GRADE_NAMES, SOURCES, aggregate, skill

Day = dict[str, dict[str, Any]]
"""One verified date: source -> its scores (:func:`service.verification.scores.score_source`)."""
LABELS = {"model": "model (published)", "cmaq": "raw CMAQ", "persistence": "persistence"}
EPISODE = ((1, 8), (1, 9))
"""The paper's high-concentration case study: 8-9 January (the twin has no episode fixed there)."""


@dataclass(frozen=True)
class Period:
    """The verified days of a period and what they add up to."""

    days: dict[dt.date, Day]

    def common(self, *sources: str) -> list[dt.date]:
        """Dates on which every one of ``sources`` was scored."""
        return [d for d, day in sorted(self.days.items()) if all(s in day for s in sources)]

    def aggregate(self, source: str, dates: list[dt.date] | None = None) -> dict[str, Any]:
        dates = dates if dates is not None else self.common(source)
        return aggregate([self.days[d][source] for d in dates])

    def skill(self, reference: str) -> float | None:
        """The model's MSE skill against ``reference`` over the days both were scored."""
        dates = self.common("model", reference)
        if not dates:
            return None
        mse = {s: self.aggregate(s, dates)["cells"]["rmse"] ** 2 for s in ("model", reference)}
        return skill(mse["model"], mse[reference])

    def worse_than_cmaq(self) -> list[tuple[dt.date, float, float]]:
        """Dates on which the model's RMSE was above raw CMAQ's, with both RMSEs."""
        out = []
        for d in self.common("model", "cmaq"):
            m, c = (self.days[d][s]["cells"]["rmse"] for s in ("model", "cmaq"))
            if m > c:
                out.append((d, m, c))
        return out

    def peak(self, source: str, exclude_episode: bool = False) -> dict[str, Any]:
        dates = self.common("model", "cmaq", source)
        if exclude_episode:
            dates = [d for d in dates if (d.month, d.day) not in EPISODE]
        return aggregate([self.days[d][source] for d in dates])["peak"] if dates else {}


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _rmse_row(label: str, agg: dict[str, Any], paper: str | None, spatial: str | None) -> str:
    r, s = agg["cells"]["rmse_by_hour"], agg["cells"]["spatial_rmse_by_hour"]
    return (
        f"| {label} | {min(r):.2f}-{max(r):.2f} | {np.mean(r):.2f} | {min(s):.2f}-{max(s):.2f} "
        f"| {np.mean(s):.2f} | {paper or '-'} | {spatial or '-'} |"
    )


def _grade_table(label: str, table: list[list[int]]) -> list[str]:
    head = " | ".join(f"forecast {g}" for g in GRADE_NAMES)
    return [
        f"**{label}** (rows: the analysis' grade; columns: the forecast's; cells x days)",
        "",
        f"| analysis \\ forecast | {head} |",
        "|---|" + "---|" * len(GRADE_NAMES),
        *[
            f"| {GRADE_NAMES[i]} | " + " | ".join(str(v) for v in row) + " |"
            for i, row in enumerate(table)
        ],
        "",
    ]


def summary(period: Period) -> dict[str, Any]:
    """The numbers the report prints (also written as ``scores.json``)."""
    dates = period.common("model", "cmaq", "persistence")
    worse = period.worse_than_cmaq()
    return {
        "period": [min(period.days).isoformat(), max(period.days).isoformat()],
        "days_verified": len(period.days),
        "days_with_all_sources": len(dates),
        "sources": {s: period.aggregate(s, dates) for s in SOURCES} if dates else {},
        "skill": {"vs_cmaq": period.skill("cmaq"), "vs_persistence": period.skill("persistence")},
        "worse_than_cmaq": [
            {"date": d.isoformat(), "model_rmse": m, "cmaq_rmse": c} for d, m, c in worse
        ],
        "peak": {
            s: {"all_days": period.peak(s), "outside_8_9_january": period.peak(s, True)}
            for s in SOURCES
        },
    }


def plot_rmse_by_hour(out: Path, sources: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, (key, label) in zip(
        axes, [("rmse_by_hour", "RMSE"), ("spatial_rmse_by_hour", "spatial RMSE")], strict=True
    ):
        for s, style in zip(SOURCES, ("C0-", "k--", "C2:"), strict=True):
            ax.plot(range(24), sources[s]["cells"][key], style, label=LABELS[s])
        ax.set(xlabel="forecast hour (KST)", ylabel=f"{label} (ug/m3)", title=label)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "rmse_by_hour.png", dpi=100)
    plt.close(fig)
    return "![RMSE by hour](rmse_by_hour.png)"


def plot_skill(out: Path, period: Period) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 3.8))
    for ref, color in (("cmaq", "k"), ("persistence", "C2")):
        dates = period.common("model", ref)
        if not dates:
            continue
        x = np.array(dates, "datetime64[D]")
        daily = [period.days[d]["model"]["skill"][f"vs_{ref}"] for d in dates]
        mse = {
            s: np.array([np.mean(period.days[d][s]["cells"]["mse_by_hour"]) for d in dates])
            for s in ("model", ref)
        }
        kernel = np.ones(30)
        rolling = (
            1 - np.convolve(mse["model"], kernel, "valid") / np.convolve(mse[ref], kernel, "valid")
            if len(dates) >= 30
            else np.array([])
        )
        ax.plot(x, daily, ".", color=color, alpha=0.35, ms=3, label=f"daily, against {ref}")
        ax.plot(x[29:], rolling, "-", color=color, label=f"30-day, against {ref}")
    ax.axhline(0, color="r", lw=0.8)
    ax.set(ylabel="skill 1 - MSE/MSE_ref", title="the model's skill score over time", ylim=(-1, 1))
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "skill_over_time.png", dpi=100)
    plt.close(fig)
    return "![skill over time](skill_over_time.png)"


def plot_contingency(out: Path, sources: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.9))
    for ax, s in zip(axes, SOURCES, strict=True):
        table = np.asarray(sources[s]["grades"]["table"], float)
        share = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(4):
            for j in range(4):
                ax.text(j, i, f"{int(table[i, j])}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(4), GRADE_NAMES, fontsize=7)
        ax.set_yticks(range(4), GRADE_NAMES, fontsize=7)
        ax.set(xlabel="forecast grade", ylabel="analysis grade", title=LABELS[s])
    fig.tight_layout()
    fig.savefig(out / "grade_contingency.png", dpi=100)
    plt.close(fig)
    return "![grade contingency tables](grade_contingency.png)"


def write_report(
    period: Period,
    out: Path,
    *,
    models: list[str],
    synthetic: bool,
    commands: list[str] | None = None,
) -> Path:
    """Write ``REPORT.md``, ``scores.json`` and three figures into ``out``; return the report.

    Parameters
    ----------
    period
        The verified days (at least one with all three sources).
    out
        The folder (made if missing).
    models
        The models whose forecasts were verified (as the runs name them).
    synthetic
        Whether the inputs and truth are the twin's (title and text say so).
    commands
        The command lines that made the report, quoted verbatim.
    """
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    numbers = summary(period)
    if not numbers["sources"]:
        raise ValueError("no day of the period has the model, raw CMAQ and persistence scored")
    (out / "scores.json").write_text(json.dumps(numbers, indent=1), encoding="utf-8")
    src = numbers["sources"]
    tag = " (SYNTHETIC twin data)" if synthetic else ""
    first, last = numbers["period"]
    lines = [
        f"# Verification of the published forecasts against the analysis{tag}",
        "",
        f"Period {first} .. {last}: {numbers['days_verified']} days verified, "
        f"{numbers['days_with_all_sources']} with the model, raw CMAQ and persistence all "
        "scored (the tables use those days).",
        f"Forecasts verified: {', '.join(models)}. Truth is the PM2.5 assimilation analysis; "
        "raw CMAQ is the PM2.5 of the very CMAQ files each run read; persistence is the "
        "previous day's analysis, hour by hour.",
    ]
    if synthetic:
        lines.append(
            "**SYNTHETIC**: inputs and truth come from the twin, and the model was trained on "
            "the twin; these numbers are not skill on Korean operational forecasts."
        )
    lines.append("")
    if commands:
        lines += ["Made with:", "", "```bash", *commands, "```", ""]
    improvement = {
        k: float(np.mean(np.subtract(src["cmaq"]["cells"][k], src["model"]["cells"][k])))
        for k in ("rmse_by_hour", "spatial_rmse_by_hour")
    }
    reduction = 100 * (1 - src["model"]["cells"]["rmse"] / src["cmaq"]["cells"]["rmse"])
    lines += [
        "## Table 3: RMSE and spatial RMSE over the 24 forecast hours (ug/m3)",
        "",
        "| | RMSE range | mean | spatial RMSE range | mean | paper RMSE | paper spatial |",
        "|---|---|---|---|---|---|---|",
        _rmse_row("raw CMAQ", src["cmaq"], PAPER["cmaq"].rmse, PAPER["cmaq"].spatial_rmse),
        _rmse_row("model", src["model"], PAPER["case3"].rmse, PAPER["case3"].spatial_rmse),
        _rmse_row("persistence", src["persistence"], None, None),
        "",
        "The model's row sits beside the paper's Case 3 (the network the shipped models build "
        "on). The means are over the 24 hours, as in the paper; the RMSE pooled over all "
        "cell-hours is in the table of every score below.",
        "",
        "## Table 5: mean improvement over raw CMAQ (RMSE / spatial RMSE, ug/m3)",
        "",
        "| | ours | paper (Case 3) | RMSE reduction |",
        "|---|---|---|---|",
        f"| model | {improvement['rmse_by_hour']:.2f} / {improvement['spatial_rmse_by_hour']:.2f} "
        f"| 1.81 / 1.31 | {reduction:.1f}% |",
        "",
        "## Every score over the period",
        "",
        "| | RMSE | bias | MAE | mean daily r | RMSE at stations | grade accuracy "
        "| POD / FAR / CSI bad or worse | POD / FAR / CSI very bad |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in SOURCES:
        c, g = src[s]["cells"], src[s]["grades"]
        events = [
            " / ".join(_f(g[e][k]) for k in ("pod", "far", "csi"))
            for e in ("bad_or_worse", "very_bad")
        ]
        lines.append(
            f"| {LABELS[s]} | {c['rmse']:.2f} | {c['bias']:+.2f} | {c['mae']:.2f} "
            f"| {_f(c['mean_daily_r'], 3)} | {_f(src[s].get('stations', {}).get('rmse'))} "
            f"| {_f(g['accuracy'], 3)} | {events[0]} | {events[1]} |"
        )
    sk = numbers["skill"]
    lines += [
        "",
        f"Skill score of the model (1 - MSE/MSE_ref, over the period): **{_f(sk['vs_cmaq'], 3)} "
        f"against raw CMAQ**, **{_f(sk['vs_persistence'], 3)} against persistence**.",
        "Grades are those of each cell's daily mean (0-15 good, 16-35 moderate, 36-75 bad, "
        ">= 76 very bad ug/m3); POD, FAR and CSI count cells x days.",
        "",
    ]
    worse = numbers["worse_than_cmaq"]
    n_days = numbers["days_with_all_sources"]
    by_month = Counter(dt.date.fromisoformat(w["date"]).strftime("%b") for w in worse)
    lines += [
        "## Days on which the model was worse than raw CMAQ",
        "",
        f"**The model's RMSE was above raw CMAQ's on {len(worse)} of {n_days} days.** "
        "By month: " + (", ".join(f"{m} {n}" for m, n in by_month.items()) or "none") + ".",
        "",
    ]
    if worse:
        lines += [
            "| date | model RMSE | raw CMAQ RMSE |",
            "|---|---|---|",
            *[f"| {w['date']} | {w['model_rmse']:.2f} | {w['cmaq_rmse']:.2f} |" for w in worse],
            "",
        ]
    pk = numbers["peak"]
    lines += [
        "## The peak hours (cell-hours whose analysis is >= 75 ug/m3)",
        "",
        "| | all days: RMSE | cell-hours | outside 8-9 January: RMSE | cell-hours |",
        "|---|---|---|---|---|",
        *[
            f"| {LABELS[s]} | {_f(pk[s]['all_days'].get('rmse'))} | {pk[s]['all_days'].get('n', 0)}"
            f" | {_f(pk[s]['outside_8_9_january'].get('rmse'))} "
            f"| {pk[s]['outside_8_9_january'].get('n', 0)} |"
            for s in SOURCES
        ],
        "",
    ]
    m_all, c_all = pk["model"]["all_days"].get("rmse"), pk["cmaq"]["all_days"].get("rmse")
    m_out = pk["model"]["outside_8_9_january"].get("rmse")
    c_out = pk["cmaq"]["outside_8_9_january"].get("rmse")
    if m_all is not None and c_all is not None:
        lines.append(
            f"**At the peak hours the model is {'worse' if m_all > c_all else 'better'} than raw "
            f"CMAQ over the whole period (RMSE {m_all:.1f} against {c_all:.1f} ug/m3)"
            + (
                f", and {'worse' if m_out > c_out else 'better'} outside 8-9 January, the "
                f"paper's case study ({m_out:.1f} against {c_out:.1f}).**"
                if m_out is not None and c_out is not None
                else ".**"
            )
        )
        lines.append("")
    lines += [
        "## Figures",
        "",
        plot_rmse_by_hour(out, src),
        "",
        plot_skill(out, period),
        "",
        plot_contingency(out, src),
        "",
    ]
    lines += _grade_table("model", src["model"]["grades"]["table"])
    lines += _grade_table("raw CMAQ", src["cmaq"]["grades"]["table"])
    path = out / "REPORT.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
