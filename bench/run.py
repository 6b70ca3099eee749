"""Benchmarks: medians of repeated runs on this machine, printed as a table and JSON.

Usage: ``python bench/run.py [NAME ...]`` (``make bench`` runs them all through
``bench/report.py``). Each benchmark prepares its inputs once, then times the measured step
``--repeat`` times and reports the median.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.forecast.tensor import assemble_inputs
from service.settings import GridSpec, Settings
from service.twin.sample import write_sample_day

DAY = dt.date(2024, 1, 9)


def bench_ingest(workdir: Path) -> Callable[[], object]:
    """One day: read CMAQ (24 h, parent grid), WRF (25 records), build the tensor."""
    write_sample_day(workdir, DAY, GridSpec())
    settings = Settings(inbox=workdir)
    return lambda: assemble_inputs(DAY, settings)


def bench_twin_day(workdir: Path) -> Callable[[], object]:
    """One day of all twin files (CMAQ, WRF, analysis), from a warm process."""
    from service.twin.archive import generate

    counter = iter(range(10_000))
    generate(GridSpec(), DAY, DAY, workdir / "warm", workers=1, progress=False)  # load maps once
    return lambda: generate(
        GridSpec(), DAY, DAY, workdir / f"d{next(counter)}", workers=1, progress=False
    )


def _inference(workdir: Path, model_path: Path) -> Callable[[], object]:
    """One day's inference with the model at ``model_path`` (TensorFlow, CPU)."""
    from service.features import FEATURE_NAMES
    from service.forecast.model import load_forecaster

    write_sample_day(workdir, DAY, GridSpec())
    tensor = assemble_inputs(DAY, Settings(inbox=workdir)).tensor
    model = load_forecaster(str(model_path), GridSpec())
    assert list(FEATURE_NAMES) == model.card.feature_names
    return lambda: model.predict(tensor)


def bench_inference(workdir: Path) -> Callable[[], object]:
    """Inference for one day with the default model (models/case3_all; TensorFlow, CPU)."""
    return _inference(workdir, Settings().model_path)


def bench_inference_case3(workdir: Path) -> Callable[[], object]:
    """Inference for one day with the paper's Case 3 (models/case3; TensorFlow, CPU)."""
    from service.settings import MODELS

    return _inference(workdir, MODELS / "case3" / "model.keras")


def bench_pipeline(workdir: Path) -> Callable[[], object]:
    """One day end to end: files -> tensor -> model -> validation -> SQLite."""
    from service.forecast.model import load_forecaster
    from service.jobs import run_daily_forecast
    from service.storage.db import make_engine, session_factory
    from service.storage.migrate import upgrade

    write_sample_day(workdir, DAY, GridSpec())
    url = f"sqlite:///{workdir}/bench.sqlite"
    upgrade(url)
    settings = Settings(inbox=workdir, database_url=url, input_settle_seconds=0)
    sessions = session_factory(make_engine(url))
    load_forecaster(str(settings.model_path), settings.grid)  # the process loads the model once
    return lambda: run_daily_forecast(DAY, settings=settings, sessions=sessions)


BENCHMARKS = {
    "ingest_one_day": bench_ingest,
    "twin_one_day": bench_twin_day,
    "inference_one_day": bench_inference,
    "inference_one_day_case3": bench_inference_case3,
    "pipeline_one_day": bench_pipeline,
}


def machine() -> str:
    cores = os.cpu_count()
    return (
        f"{platform.node()} {platform.machine()} {cores} cores, Python {platform.python_version()}"
    )


def measure(names: list[str], repeat: int) -> dict[str, dict[str, float]]:
    """Each benchmark's median, minimum and maximum over ``repeat`` timed runs, in seconds."""
    results = {}
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            step = BENCHMARKS[name](Path(tmp))
            step()  # warm-up: imports, caches, page cache
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
        results[name] = {
            "median_s": statistics.median(times),
            "min_s": min(times),
            "max_s": max(times),
            "repeat": repeat,
        }
        ms = [t * 1000 for t in times]
        print(
            f"{name:24s} median {statistics.median(ms):8.1f} ms "
            f"(min {min(ms):.1f}, max {max(ms):.1f}, n={repeat})",
            file=sys.stderr,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=list(BENCHMARKS))
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    results = measure(args.names, args.repeat)
    print(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
