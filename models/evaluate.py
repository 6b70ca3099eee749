"""Scoring models and raw CMAQ against the analysis, and the report with the paper's figures."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.metrics import distribution, score

F32 = npt.NDArray[np.float32]

#: The paper's numbers (PAPER.md, Tables 4 and 5), for side-by-side reporting.
PAPER: dict[str, dict[str, Any]] = {
    "truth": {"min": 0.0014, "max": 518.10, "mean": 14.00, "std": 13.00, "var": 167.98},
    "cmaq": {
        "min": 0.0004,
        "max": 555.43,
        "mean": 14.71,
        "std": 15.42,
        "var": 237.81,
        "rmse": "10.04-10.45",
        "spatial_rmse": "8.24-8.57",
    },
    "case1": {
        "min": -54.00,
        "max": 119.16,
        "mean": 13.18,
        "std": 9.41,
        "var": 88.63,
        "improvement": (1.78, 1.22),
    },
    "case2": {
        "min": -410.83,
        "max": 391.32,
        "mean": 14.15,
        "std": 9.74,
        "var": 94.80,
        "improvement": (1.82, 1.32),
    },
    "case3": {
        "min": 0.00013,
        "max": 213.02,
        "mean": 14.00,
        "std": 9.42,
        "var": 88.78,
        "improvement": (1.81, 1.31),
        "rmse": "8.16-8.76",
        "spatial_rmse": "6.60-7.26",
    },
    "case4": {
        "min": 0.00013,
        "max": 1330.47,
        "mean": 13.55,
        "std": 9.20,
        "var": 84.60,
        "improvement": (1.57, 1.25),
        "rmse": "8.36-9.02",
        "spatial_rmse": "6.96-7.43",
    },
}


def predict_all(model: Any, x: npt.NDArray[np.floating], batch: int = 8) -> F32:
    """Run a :class:`~models.artifact.LoadedModel` over many days."""
    out = np.empty((x.shape[0], *x.shape[1:4]), np.float32)
    for start in range(0, x.shape[0], batch):
        out[start : start + batch] = model.predict(np.asarray(x[start : start + batch]))
    return out


def evaluate(
    predictions: dict[str, F32], cmaq: F32, truth: F32, dates: list[dt.date]
) -> dict[str, Any]:
    """Metrics of raw CMAQ and every model over the same days, plus the map days."""
    result: dict[str, Any] = {
        "period": [dates[0].isoformat(), dates[-1].isoformat()],
        "days": len(dates),
        "truth": distribution(truth),
        "cmaq": score(cmaq, truth),
        "models": {name: score(p, truth, cmaq) for name, p in predictions.items()},
    }
    return result


def card_metrics(metrics: dict[str, Any], name: str, truth: str) -> dict[str, Any]:
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
        "prediction_distribution": {k: round(v, 5) for k, v in m["distribution"].items()},
    }


def map_days(dates: list[dt.date]) -> list[int]:
    """Indices of 8 and 9 January in ``dates`` (the paper's case study)."""
    return [k for k, d in enumerate(dates) if d.month == 1 and d.day in (8, 9)]


def write_report(
    metrics: dict[str, Any],
    out: Path,
    maps: dict[str, F32] | None = None,
    histories: dict[str, dict[str, list[float]]] | None = None,
    commands: list[str] | None = None,
    synthetic: bool = True,
    notes: str | None = None,
) -> Path:
    """Write ``REPORT.md``, ``metrics.json`` and the figures into ``out``.

    ``notes`` (markdown written by people: how the models were trained, what the numbers
    mean) is appended after the generated tables and figures.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    names = sorted(metrics["models"])
    hours = np.arange(24)

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for key, label in (("rmse_by_hour", "RMSE"), ("spatial_rmse_by_hour", "spatial RMSE")):
        ax = axes[0 if key == "rmse_by_hour" else 1]
        ax.plot(hours, metrics["cmaq"][key], "k--", label="raw CMAQ")
        for name in names:
            ax.plot(hours, metrics["models"][name][key], label=name)
        ax.set(xlabel="forecast hour (KST)", ylabel=f"{label} (ug/m3)", title=label)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "rmse_by_hour.png", dpi=100)
    plt.close(fig)

    if histories:
        fig, ax = plt.subplots(figsize=(6.5, 3.8))
        for name, h in sorted(histories.items()):
            line = ax.plot(h["loss"], label=f"{name} train")[0]
            if "val_loss" in h:
                ax.plot(h["val_loss"], "--", color=line.get_color(), label=f"{name} validation")
        ax.set(xlabel="epoch", ylabel="MAE (scaled)", yscale="log", title="learning curves")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "learning_curves.png", dpi=100)
        plt.close(fig)

    if maps:
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
        fig.savefig(out / "maps_jan8_9.png", dpi=90)
        plt.close(fig)

    def dist_row(label: str, d: dict[str, float], paper: dict[str, Any]) -> str:
        ours = " | ".join(f"{d[k]:.4g}" for k in ("min", "max", "mean", "std", "var"))
        theirs = " | ".join(f"{paper[k]:.4g}" for k in ("min", "max", "mean", "std", "var"))
        return f"| {label} | {ours} | {theirs} |"

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
    lines += [
        "## Table 3: RMSE and spatial RMSE over the 24 forecast hours (ug/m3)",
        "",
        "| | RMSE range | mean | spatial RMSE range | mean | paper RMSE | paper spatial |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, m, key in [("raw CMAQ", metrics["cmaq"], "cmaq")] + [
        (n, metrics["models"][n], n) for n in names
    ]:
        r, s = m["rmse_by_hour"], m["spatial_rmse_by_hour"]
        p = PAPER.get(key, {})
        lines.append(
            f"| {label} | {min(r):.2f}-{max(r):.2f} | {np.mean(r):.2f} | {min(s):.2f}-{max(s):.2f} "
            f"| {np.mean(s):.2f} | {p.get('rmse', '-')} | {p.get('spatial_rmse', '-')} |"
        )
    lines += [
        "",
        "## Table 4: distribution of predictions and truth (ug/m3)",
        "",
        "| | min | max | mean | std | var | paper min | max | mean | std | var |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        dist_row("truth (analysis)", metrics["truth"], PAPER["truth"]),
        dist_row("raw CMAQ", metrics["cmaq"]["distribution"], PAPER["cmaq"]),
        *[
            dist_row(n, metrics["models"][n]["distribution"], PAPER.get(n, PAPER["case3"]))
            for n in names
        ],
        "",
        "## Table 5: mean improvement over raw CMAQ (RMSE / spatial RMSE, ug/m3)",
        "",
        "| | ours | paper | RMSE reduction |",
        "|---|---|---|---|",
        *[
            f"| {n} | {metrics['models'][n]['improvement_rmse']:.2f} / "
            f"{metrics['models'][n]['improvement_spatial_rmse']:.2f} | "
            f"{PAPER.get(n, {}).get('improvement', ('-', '-'))[0]} / "
            f"{PAPER.get(n, {}).get('improvement', ('-', '-'))[1]} | "
            f"{metrics['models'][n]['rmse_reduction_percent']:.1f}% |"
            for n in names
        ],
        "",
        "![RMSE by hour](rmse_by_hour.png)",
        "",
    ]
    if histories:
        lines += ["![learning curves](learning_curves.png)", ""]
    if maps:
        lines += ["![maps of 8-9 January](maps_jan8_9.png)", ""]
    if notes:
        lines += [notes.strip(), ""]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
