"""Train and score all four cases on a fresh twin archive, on a GPU machine (Keras on JAX).

Run from the repository root with ``KERAS_BACKEND=jax``; writes into ``$OUT`` (or ``--out``):
``caseN/model.keras``, ``caseN/card.json``, ``caseN/history.json``, ``metrics.json`` and
``maps.npz`` (8-9 January of the test year) for the report, and ``log.txt``. Each case
trains in its own process; with several GPUs the cases are dealt out over them (case ``k`` of
the list on GPU ``k mod n``), otherwise they share the one GPU.

    python scripts/device_train.py --out $OUT --minutes 12
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
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _gpu_count() -> int:
    """GPUs on this machine, counted without initialising JAX in the parent process."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return 0
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())


def _train_case(args: tuple[int, str, str, float, int, int, str | None]) -> str:
    case, cache, out, minutes, epochs, filters, gpu = args
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    if gpu is not None:  # before JAX starts in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    from models.train import TrainConfig
    from service.settings import GridSpec
    from service.training.dataset import open_dataset
    from service.training.workflow import train_on_dataset

    data = open_dataset(cache)
    config = TrainConfig(
        case=case, epochs=epochs, verbose=2, time_limit_s=minutes * 60, filters=filters
    )
    card = train_on_dataset(
        data,
        case,
        Path(out) / f"case{case}",
        config=config,
        grid=GridSpec(),
        synthetic=True,
        archive=Path("twin-2019-2022"),
    )
    return (
        f"case {case} (GPU {gpu}): best epoch {card.training['best_epoch']} "
        f"of {card.training['epochs_run']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out")))
    parser.add_argument("--work", type=Path, default=Path("/tmp/pm25"))
    parser.add_argument(
        "--deadline",
        type=float,
        default=540.0,
        help="seconds from start by which everything must be done",
    )
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--filters", type=int, default=36)
    parser.add_argument("--cases", default="1,2,3,4")
    parser.add_argument("--years", default="2019,2021,2022", help="train start, train end, test")
    parser.add_argument("--days", type=int, default=0, help="limit each year to N days (dry runs)")
    args = parser.parse_args()
    y0, y1, yt = (int(v) for v in args.years.split(","))
    first, train_end = dt.date(y0, 1, 1), dt.date(y1, 12, 31)
    test_start, test_end = dt.date(yt, 1, 1), dt.date(yt, 12, 31)
    if args.days:
        train_end = first + dt.timedelta(days=args.days - 1)
        test_end = test_start + dt.timedelta(days=args.days - 1)
    from service.settings import GridSpec
    from service.training.dataset import build_dataset
    from service.twin.archive import generate

    t0 = time.time()
    archive = args.work / "archive"
    generate(GridSpec(), first, train_end, archive, progress=False)
    generate(GridSpec(), test_start, test_end, archive, progress=False)
    print(f"archive in {time.time() - t0:.0f} s", flush=True)
    t1 = time.time()
    build_dataset(archive, first, train_end, args.work / "train", progress=False)
    build_dataset(archive, test_start, test_end, args.work / "test", progress=False)
    print(f"datasets in {time.time() - t1:.0f} s", flush=True)
    for name in ("train", "test"):
        meta = json.loads((args.work / name / "dates.json").read_text())
        for day, why in list(meta.get("skipped", {}).items())[:20]:
            print(f"skipped {name} {day}: {why}", flush=True)
        print(f"{name}: {len(meta['kept'])} days kept, {len(meta['skipped'])} skipped", flush=True)
    minutes = max(0.5, (args.deadline - (time.time() - t0) - 75.0) / 60.0)
    print(f"training for at most {minutes:.1f} min", flush=True)
    cases = [int(c) for c in args.cases.split(",")]
    gpus = _gpu_count()
    print(f"{gpus} GPU(s) for {len(cases)} case(s)", flush=True)
    jobs = [
        (
            c,
            str(args.work / "train"),
            str(args.out),
            minutes,
            args.epochs,
            args.filters,
            str(k % gpus) if gpus > 1 else None,
        )
        for k, c in enumerate(cases)
    ]
    ctx = mp.get_context("spawn")
    with ctx.Pool(len(jobs)) as pool:
        for line in pool.imap_unordered(_train_case, jobs):
            print(line, flush=True)
    print(f"training done at {time.time() - t0:.0f} s", flush=True)
    try:
        evaluate_test(args, cases)
    except Exception:  # the trained models are already saved; report and keep them
        import traceback

        traceback.print_exc()
    print(f"all done at {time.time() - t0:.0f} s", flush=True)


def evaluate_test(args: argparse.Namespace, cases: list[int]) -> None:
    import numpy as np

    from models.artifact import LoadedModel
    from models.evaluate import evaluate, map_days, predict_all
    from service.features import FEATURE_NAMES
    from service.training.dataset import open_dataset

    test = open_dataset(args.work / "test")
    cmaq = np.asarray(test.x[..., FEATURE_NAMES.index("pm25")])
    truth = np.asarray(test.y)
    preds = {}
    for c in cases:
        model = LoadedModel(args.out / f"case{c}" / "model.keras", list(FEATURE_NAMES))
        preds[f"case{c}"] = predict_all(model, test.x, batch=16)
    metrics = evaluate(preds, cmaq, truth, test.dates)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    idx = map_days(test.dates) or [0, min(1, len(test.dates) - 1)]
    maps = {"analysis": truth[idx], "raw CMAQ": cmaq[idx], **{k: v[idx] for k, v in preds.items()}}
    np.savez_compressed(args.out / "maps.npz", **{k: v.astype(np.float16) for k, v in maps.items()})
    for name, m in metrics["models"].items():
        print(
            name,
            f"rmse {m['rmse_mean']:.2f} (cmaq {metrics['cmaq']['rmse_mean']:.2f}) "
            f"reduction {m['rmse_reduction_percent']:.1f}% min {m['distribution']['min']:.3g}",
        )


if __name__ == "__main__":
    main()
