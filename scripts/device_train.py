"""Train and score a list of named runs on a fresh twin archive, on a GPU machine (Keras on JAX).

Run from the repository root with ``KERAS_BACKEND=jax``. The runs are the paper's Cases 1-4
(``case1``..``case4``, the paper's setup) and the Case-3 variants of issue 14
(:data:`models.train.VARIANTS`: ``val_seasonal``, ``margin``, ``weighted_loss``,
``oversample``, ``residual``, ``all``). One call:

1. writes the twin archive (train years and test year) with the project's own generator;
2. builds the datasets through the service's readers, once, with the widest input margin any
   run needs (the narrower runs take a view of it: the interior is byte-identical to reading
   the service grid itself, tests/test_ablation.py checks it);
3. trains every run in its own process, all at once, dealt over the GPUs present (run ``k``
   on GPU ``k mod n``; several processes share a GPU, none preallocates its memory), under
   one common deadline (each stops after the epoch past which another would overrun it, with
   its best weights), while this process fits and scores the per-cell linear corrections;
4. scores each run on the test year where it trained (its saved artifact, reloaded: the
   round trip is checked), and writes, into ``$OUT`` (or ``--out``), at most six files:
   ``runs.tar`` (each run's ``model.keras``, ``card.json`` with its test scores, history,
   learning curve and training log), ``metrics.json`` (the report's metrics with the skill
   rows), ``ABLATION.md``, ``maps.npz`` (8-9 January of the test year, float16) and the
   summary lines on stdout. They are rewritten as each run ends, so a call cut short still
   returns what finished.

    python scripts/device_train.py --out $OUT --deadline 540
    python scripts/device_train.py --out $OUT --only case3,all --deadline 300
    python scripts/device_train.py --out /tmp/dry --days 12 --filters 2 --deadline 120  # CPU
"""

from __future__ import annotations

import os

# One BLAS thread per process: the archive and dataset steps run one process per core.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RUNS = [
    "case3",
    "all",
    "residual",
    "margin",
    "weighted_loss",
    "oversample",
    "val_seasonal",
    "mse_loss",
    "residual_mse",
    "case1",
    "case2",
    "case4",
]
TRUTH = "twin PM2.5 assimilation analysis (SYNTHETIC)"
DESCRIPTIONS = {
    "case1": "the paper's Case 1 (tanh everywhere), the paper's setup",
    "case2": "the paper's Case 2 (ReLU in the ConvLSTMs, tanh output), the paper's setup",
    "case3": "the paper's Case 3 (tanh, ReLU output), the paper's setup: the reference",
    "case4": "the paper's Case 4 (ReLU everywhere), the paper's setup",
    "val_seasonal": "Case 3; validation = every 5th whole week of 2019-2021 instead of the last "
    "20% of the days",
    "margin": "Case 3; inputs on a window 4 cells wider on each side (the CMAQ parent grid), "
    "output cropped to the service grid in the network, so the loss never sees the margin",
    "margin_padded": "the margin model fed the service grid's inputs with their edge values "
    "repeated outwards (what the daily run gives it where the files do not cover the margin)",
    "weighted_loss": "Case 3; MAE weighted by 1 + (analysis / 75 ug/m3)^2",
    "oversample": "Case 3; training days with >= 1% of their cell-hours at >= 75 ug/m3 three times",
    "residual": "Case 3; the network predicts the correction to CMAQ's PM2.5 "
    "(output = ReLU(CMAQ + linear ConvLSTM output))",
    "all": "Case 3 with all five changes together",
    "mse_loss": "Case 3; mean squared error instead of MAE (the conditional mean, not the median)",
    "residual_mse": "Case 3; seasonal validation, predicting CMAQ's correction, mean squared error",
    "all_padded": "the 'all' model fed the service grid's inputs with edges repeated",
}


def _gpu_count() -> int:
    """GPUs on this machine, counted without initialising JAX in the parent process."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return 0
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())


def _redirect(log_path: Path) -> None:
    """Send this process's stdout and stderr (Keras' epoch lines, XLA's notes) to a file."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)


def _run(job: dict[str, Any]) -> dict[str, Any]:
    """Train one run, save it, reload it, score it on the test year; never raises."""
    name = job["name"]
    folder = Path(job["work"]) / "runs" / name
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # several processes share a GPU
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if job["gpu"] is not None:  # before JAX starts in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = job["gpu"]
    _redirect(folder / "train.log")
    t0 = time.time()
    try:
        return _train_and_score(job, folder, t0)
    except Exception:
        traceback.print_exc()
        return {"name": name, "error": traceback.format_exc(limit=3)[-600:]}


def _train_and_score(job: dict[str, Any], folder: Path, t0: float) -> dict[str, Any]:
    import numpy as np

    from models.artifact import LoadedModel, record_metrics
    from models.evaluate import card_metrics, evaluate, map_days, predict_all
    from models.train import variant_config
    from service.features import FEATURE_NAMES
    from service.settings import GridSpec
    from service.training.dataset import open_dataset
    from service.training.workflow import skill_rows, train_on_dataset

    name = job["name"]
    config = variant_config(
        name,
        epochs=job["epochs"],
        filters=job["filters"],
        verbose=2,
        deadline=job["deadline"],
        mixed_precision=job["bf16"],
    )
    card = train_on_dataset(
        open_dataset(job["train"]),
        config.case,
        folder,
        config=config,
        grid=GridSpec(),
        synthetic=True,
        archive=Path(job["archive_name"]),
    )
    trained = time.time()
    test = open_dataset(job["test"])
    model = LoadedModel(folder / "model.keras", list(FEATURE_NAMES))
    preds = {name: predict_all(model, test.with_margin(card.margin).x, batch=16)}
    if card.margin:  # what the daily run gives it today: the service grid, edges repeated
        preds[f"{name}_padded"] = predict_all(model, test.with_margin(0).x, batch=16)
    cmaq, truth = test.cmaq, np.asarray(test.y)
    metrics = evaluate(preds, cmaq, truth, test.dates)
    record_metrics(folder / "model.keras", card_metrics(metrics, name, TRUTH))
    skill = skill_rows(preds, cmaq, truth)
    idx = map_days(test.dates) or [0, min(1, len(test.dates) - 1)]
    for key, p in preds.items():
        np.save(folder / f"maps-{key}.npy", p[idx].astype(np.float16))
    return {
        "name": name,
        "gpu": job["gpu"],
        "models": metrics["models"],
        "skill": {k: v for k, v in skill.items() if k != "cmaq"},
        "epochs_run": card.training["epochs_run"],
        "best_epoch": card.training["best_epoch"],
        "train_s": round(trained - t0),
        "score_s": round(time.time() - trained),
        "card_name": card.name,
    }


def _baselines(work: Path) -> dict[str, Any]:
    """Raw CMAQ's and the linear corrections' scores and maps (CPU, while the GPUs train)."""
    import numpy as np

    from models.evaluate import evaluate, map_days
    from service.training.dataset import open_dataset
    from service.training.workflow import linear_baselines, skill_rows

    train, test = open_dataset(work / "train"), open_dataset(work / "test")
    preds = linear_baselines(train, test)
    cmaq, truth = test.cmaq, np.asarray(test.y)
    metrics = evaluate(preds, cmaq, truth, test.dates, skill_rows(preds, cmaq, truth))
    idx = map_days(test.dates) or [0, min(1, len(test.dates) - 1)]
    maps = {"analysis": truth[idx], "raw CMAQ": cmaq[idx], **{k: v[idx] for k, v in preds.items()}}
    return {"metrics": metrics, "maps": {k: v.astype(np.float16) for k, v in maps.items()}}


def _run_order(name: str) -> tuple[int, str]:
    """Where a run sorts: the order of :data:`RUNS`, a sensitivity run after its base."""
    head = name.split("+")[0]
    return (RUNS.index(head) if head in RUNS else len(RUNS), name)


def describe_run(name: str) -> str:
    """What a run is; a sensitivity run (``all+oversample=5``) is its base with the options."""
    if name in DESCRIPTIONS:
        return DESCRIPTIONS[name]
    if name.endswith("_padded"):
        return (
            f"{describe_run(name.removesuffix('_padded'))}, fed the service grid's inputs "
            "with edges repeated"
        )
    head, *extras = name.split("+")
    return f"{DESCRIPTIONS.get(head, head)}; with {', '.join(extras)}"


def _write_outputs(
    out: Path, work: Path, base: dict[str, Any], done: list[dict[str, Any]], command: str
) -> None:
    """(Re)write metrics.json, ABLATION.md, maps.npz and runs.tar from what has finished."""
    import numpy as np

    from models.evaluate import write_ablation

    metrics = json.loads(json.dumps(base["metrics"]))  # a deep copy
    order = []
    for run in sorted(done, key=lambda r: _run_order(r["name"])):
        if "error" in run:
            continue
        metrics["models"].update(run["models"])
        metrics["skill"].update(run["skill"])
        order += list(run["skill"])
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    trained = "; ".join(
        f"{r['name']}: {r['epochs_run']} epochs (best {r['best_epoch']})"
        if "error" not in r
        else f"{r['name']}: FAILED"
        for r in done
    )
    write_ablation(
        metrics,
        out,
        order=order,
        descriptions={k: describe_run(k) for k in order},
        commands=[command],
        notes=f"Training: {trained}.",
    )
    maps = dict(base["maps"])
    for run in done:
        for path in sorted((work / "runs" / run["name"]).glob("maps-*.npy")):
            maps[path.stem.removeprefix("maps-")] = np.load(path)
    np.savez_compressed(out / "maps.npz", **maps)
    tmp = out / ".runs.tar"
    with tarfile.open(tmp, "w") as tar:
        for run in done:
            folder = work / "runs" / run["name"]
            for path in sorted(folder.iterdir()):
                if path.suffix != ".npy":
                    tar.add(path, arcname=f"{run['name']}/{path.name}")
    tmp.replace(out / "runs.tar")


def main() -> None:
    from scripts.twin_calibrate import add_settings_arguments, apply_settings, settings_of

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out")))
    parser.add_argument("--work", type=Path, default=Path("/tmp/pm25"))
    parser.add_argument(
        "--deadline", type=float, default=540.0, help="seconds from start for everything"
    )
    parser.add_argument(
        "--score-reserve",
        type=float,
        default=80.0,
        help="seconds kept after training for scoring and writing",
    )
    parser.add_argument("--runs", default=",".join(RUNS), help="the runs, in dealing order")
    parser.add_argument("--only", default="", help="comma-separated subset of --runs")
    parser.add_argument(
        "--alone",
        default="",
        help="a run that gets GPU 0 to itself; the others are dealt over the other GPUs",
    )
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--filters", type=int, default=36)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision")
    parser.add_argument("--years", default="2019,2021,2022", help="train start, train end, test")
    parser.add_argument("--days", type=int, default=0, help="limit each year to N days (dry runs)")
    parser.add_argument(
        "--keep-archive", action="store_true", help="reuse WORK/archive if it exists (dry runs)"
    )
    add_settings_arguments(parser)  # the twin's parameters, set before the archive is written
    parser.add_argument(
        "--gpu-ids", default="", help="comma-separated GPUs this call may use (default: all)"
    )
    parser.add_argument("--workers", type=int, default=0, help="archive processes (0: all cores)")
    parser.add_argument(
        "--twin-report",
        type=Path,
        default=None,
        metavar="SEOUL_CSV",
        help="also write the twin's calibration report of the whole archive (test year as the "
        "check) into OUT/twin.tar, beside the training, with Seoul's real hours from SEOUL_CSV",
    )
    args = parser.parse_args()
    t0 = time.time()
    command = "python scripts/device_train.py " + " ".join(sys.argv[1:])
    runs = [r for r in args.runs.split(",") if r]
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - set(runs)
        if unknown:
            parser.error(f"--only names runs not in --runs: {sorted(unknown)}")
        runs = [r for r in runs if r in wanted]

    from models.train import variant_config
    from service.settings import GridSpec
    from service.training.dataset import build_dataset
    from service.twin.archive import generate

    args.set = settings_of(args)  # the twin report's process applies them again
    apply_settings(args.set)  # the archive's worker processes are forked: they inherit these

    margin = max(variant_config(r).margin for r in runs)  # also refuses unknown names early
    y0, y1, yt = (int(v) for v in args.years.split(","))
    first, train_end = dt.date(y0, 1, 1), dt.date(y1, 12, 31)
    test_start, test_end = dt.date(yt, 1, 1), dt.date(yt, 12, 31)
    if args.days:
        train_end = first + dt.timedelta(days=args.days - 1)
        test_end = test_start + dt.timedelta(days=args.days - 1)
    args.out.mkdir(parents=True, exist_ok=True)
    archive = args.work / "archive"
    if not (args.keep_archive and archive.is_dir()):
        workers = args.workers or None
        generate(GridSpec(), first, train_end, archive, progress=False, workers=workers)
        generate(GridSpec(), test_start, test_end, archive, progress=False, workers=workers)
    print(f"archive in {time.time() - t0:.0f} s", flush=True)
    t1 = time.time()
    for name, (a, b) in {"train": (first, train_end), "test": (test_start, test_end)}.items():
        build_dataset(archive, a, b, args.work / name, progress=False, margin=margin)
        meta = json.loads((args.work / name / "dates.json").read_text())
        for day, why in list(meta.get("skipped", {}).items())[:20]:
            print(f"skipped {name} {day}: {why}", flush=True)
        print(f"{name}: {len(meta['kept'])} days kept, {len(meta['skipped'])} skipped", flush=True)
    print(f"datasets (margin {margin}) in {time.time() - t1:.0f} s", flush=True)

    gpu_ids = args.gpu_ids.split(",") if args.gpu_ids else [str(g) for g in range(_gpu_count())]
    gpus = len(gpu_ids)
    deadline = t0 + args.deadline - args.score_reserve
    print(
        f"{len(runs)} run(s) on {gpus} GPU(s), training until {deadline - t0:.0f} s "
        f"({(deadline - time.time()) / 60:.1f} min from now)",
        flush=True,
    )
    jobs = [
        {
            "name": r,
            "gpu": _gpu_of(r, k, gpu_ids, args.alone, runs),
            "work": str(args.work),
            "train": str(args.work / "train"),
            "test": str(args.work / "test"),
            "archive_name": f"twin-{y0}-{yt}",
            "epochs": args.epochs,
            "filters": args.filters,
            "deadline": deadline,
            "bf16": args.bf16,
        }
        for k, r in enumerate(runs)
    ]
    ctx = mp.get_context("spawn")
    report = None
    if args.twin_report is not None:
        report = ctx.Process(
            target=_twin_report,
            args=(archive, args.out, first, test_end, args.twin_report, yt, args.set),
        )
        report.start()
    done: list[dict[str, Any]] = []
    with ctx.Pool(len(jobs)) as pool:
        pending = pool.imap_unordered(_run, jobs)
        base = _baselines(args.work)
        cmaq, lin = base["metrics"]["skill"]["cmaq"], base["metrics"]["skill"]["linear"]
        print(
            f"baselines at {time.time() - t0:.0f} s: raw CMAQ rmse {cmaq['rmse_mean']:.2f}, "
            f"spatial {cmaq['spatial_rmse_mean']:.2f}; linear correction {lin['rmse_mean']:.2f}, "
            f"spatial {lin['spatial_rmse_mean']:.2f}",
            flush=True,
        )
        _write_outputs(args.out, args.work, base, done, command)
        for result in pending:
            done.append(result)
            _report(result, t0)
            _write_outputs(args.out, args.work, base, done, command)
    if report is not None:
        report.join()
    print(f"all done at {time.time() - t0:.0f} s", flush=True)


def _twin_report(
    archive: Path,
    out: Path,
    first: dt.date,
    last: dt.date,
    seoul: Path,
    check_year: int,
    settings: list[str],
) -> None:
    """``pm25 twin report`` of the whole archive, packed as OUT/twin.tar (REPORT.md, PNGs)."""
    from scripts.twin_calibrate import apply_settings
    from service.twin.report import write_report

    apply_settings(settings)  # a spawned process: the episodes table reads the parameters
    t0 = time.time()
    folder = archive.parent / "twin-report"
    _, ok = write_report(archive, folder, first, last, seoul, check_years=(check_year,))
    with tarfile.open(out / "twin.tar", "w") as tar:
        for item in sorted(folder.iterdir()):
            tar.add(item, arcname=item.name)
    verdict = "every target met" if ok else "some targets MISSED"
    print(f"twin report in {time.time() - t0:.0f} s: {verdict}", flush=True)


def _gpu_of(name: str, k: int, gpu_ids: list[str], alone: str, runs: list[str]) -> str | None:
    """Run ``k`` on GPU ``k mod n`` of ``gpu_ids``; with ``alone`` (and several GPUs) that run
    gets the first one to itself."""
    gpus = len(gpu_ids)
    if not gpus:
        return None
    if not alone or gpus < 2 or alone not in runs:
        return gpu_ids[k % gpus]
    if name == alone:
        return gpu_ids[0]
    rest = [r for r in runs if r != alone]
    return gpu_ids[1 + rest.index(name) % (gpus - 1)]


def _report(result: dict[str, Any], t0: float) -> None:
    name = result["name"]
    if "error" in result:
        print(f"{name} FAILED at {time.time() - t0:.0f} s: {result['error']}", flush=True)
        return
    for key, s in result["skill"].items():
        print(
            f"{key} (GPU {result['gpu']}, {result['epochs_run']} epochs, best "
            f"{result['best_epoch']}, {result['train_s']} + {result['score_s']} s): "
            f"rmse {s['rmse_mean']:.2f}, spatial {s['spatial_rmse_mean']:.2f}, "
            f"peak {s['peak']['rmse'] or float('nan'):.2f}, "
            f"band/interior {s['band_ratio'] or float('nan'):.2f}, "
            f"csi76 {s['very_bad']['csi'] or 0:.2f}, days worse {s['days_worse']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
