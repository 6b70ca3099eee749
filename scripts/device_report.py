"""Write docs/model/REPORT.md and ABLATION.md from what ``scripts/device_train.py`` brought back.

The device scores every run on the test year where it trained (Keras on JAX) and returns
``metrics.json``, ``maps.npz`` and ``runs.tar``. One report may gather the runs of several
calls on the same archive: each source is ``FOLDER`` (all its runs) or ``FOLDER:RUN,RUN,...``
(those runs only); a folder without ``maps.npz`` or ``runs.tar`` (an earlier report's
``metrics.json``) gives scores only. The sources must agree on raw CMAQ's and the truth's
scores to every digit (the same archive), or nothing is written. The report shows the runs of
``--report-runs`` (the paper's cases and the default) with their learning curves and maps;
the ablation table shows them all, with each run's epochs from its card.

    python scripts/device_report.py /work/.device/7 --out docs/model --command "..."
    python scripts/device_report.py docs/model:case1,case2 /work/.device/1:case3 \\
        /work/.device/2:all --report-runs case1,case2,case3,all --command "..."
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.evaluate import BASELINES, write_ablation, write_report
from scripts.device_train import describe_run


def _source(spec: str) -> tuple[Path, list[str] | None]:
    folder, _, runs = spec.partition(":")
    return Path(folder), (runs.split(",") if runs else None)


def gather(specs: list[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[str]]:
    """Merged metrics, maps, histories and cards of the runs the sources name, in their order."""
    metrics: dict[str, Any] | None = None
    maps: dict[str, Any] = {}
    histories: dict[str, Any] = {}
    cards: dict[str, Any] = {}
    order: list[str] = []
    for spec in specs:
        folder, wanted = _source(spec)
        found = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        if metrics is None:
            metrics = {**found, "models": {}, "skill": {}}
            metrics["skill"]["cmaq"] = found["skill"]["cmaq"]
            for name in BASELINES:
                metrics["models"][name] = found["models"][name]
                metrics["skill"][name] = found["skill"][name]
        for key in ("period", "days", "truth", "cmaq"):
            if found[key] != metrics[key]:
                raise SystemExit(f"{folder}: its {key!r} differs: not the same archive")
        for name in BASELINES:
            if found["models"][name] != metrics["models"][name]:
                raise SystemExit(f"{folder}: its {name!r} scores differ: not the same archive")
        runs = wanted or [r for r in found["skill"] if r not in (*BASELINES, "cmaq")]
        for run in runs:
            if run not in found["models"]:
                raise SystemExit(f"{folder}: no run {run!r} (has {sorted(found['models'])})")
            if run in order:
                raise SystemExit(f"{folder}: run {run!r} is taken from an earlier source too")
            metrics["models"][run] = found["models"][run]
            metrics["skill"][run] = found["skill"][run]
            order.append(run)
        if (folder / "maps.npz").exists():
            with np.load(folder / "maps.npz") as z:
                for key in ("analysis", "raw CMAQ", *runs):
                    if key in z.files:
                        maps[key] = z[key].reshape(-1, *z[key].shape[-2:]).astype(np.float32)
        if (folder / "runs.tar").exists():
            with tempfile.TemporaryDirectory() as tmp, tarfile.open(folder / "runs.tar") as tar:
                tar.extractall(tmp, filter="data")
                for run in runs:
                    base = Path(tmp) / run
                    if (base / "history.json").exists():
                        histories[run] = json.loads((base / "history.json").read_text("utf-8"))
                        cards[run] = json.loads((base / "card.json").read_text("utf-8"))
    if metrics is None:
        raise SystemExit("no sources")
    return metrics, maps, {"histories": histories, "cards": cards}, order


def _subset(metrics: dict[str, Any], runs: list[str]) -> dict[str, Any]:
    keep = [*BASELINES, *runs]
    return {
        **metrics,
        "models": {k: v for k, v in metrics["models"].items() if k in keep},
        "skill": {k: v for k, v in metrics["skill"].items() if k in (*keep, "cmaq")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sources", nargs="+", help="FOLDER or FOLDER:RUN,RUN,...")
    parser.add_argument("--out", type=Path, default=Path("docs/model"))
    parser.add_argument("--notes", type=Path, default=Path("docs/model/NOTES.md"))
    parser.add_argument("--report-runs", default="", help="the runs of REPORT.md (default all)")
    parser.add_argument("--command", action="append", default=[], help="quoted in the reports")
    args = parser.parse_args()
    metrics, maps, extra, order = gather(args.sources)
    shown = args.report_runs.split(",") if args.report_runs else order
    if missing := [run for run in shown if run not in order]:
        parser.error(f"--report-runs names runs no source gives: {missing}")
    notes = args.notes.read_text(encoding="utf-8") if args.notes.exists() else None
    path = write_report(
        _subset(metrics, shown),
        args.out,
        {k: v for k, v in maps.items() if k in ("analysis", "raw CMAQ", *shown)},
        {k: v for k, v in extra["histories"].items() if k in shown},
        args.command,
        True,
        notes,
    )
    print(f"wrote {path}")
    trained = "; ".join(
        f"{run}: {c['training']['epochs_run']} epochs (best {c['training']['best_epoch']})"
        for run, c in extra["cards"].items()
    )
    ablation = write_ablation(
        metrics,
        args.out,
        order=order,
        descriptions={run: describe_run(run) for run in order},
        commands=args.command,
        notes=f"Training: {trained}." if trained else None,
    )
    full = args.out / "ablation_metrics.json"
    full.write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    print(f"wrote {ablation} and {full}")


if __name__ == "__main__":
    main()
