"""Archive -> training data: every day's input tensor and analysis, through the service's readers.

The compact cache (``X.npy`` ``(days, 24, rows, cols, 12)`` and ``Y.npy`` ``(days, 24, rows,
cols)``, float32, plus ``dates.json``) is built with exactly the code the daily pipeline uses,
so training and serving cannot drift apart; it is memory-mapped, so a run never re-reads
netCDF and never needs the whole archive in memory.

With a ``margin`` (issue 14) the inputs are read on a window that many cells wider than the
service grid on each side (the CMAQ parent grid and WRF cover more than the service grid),
and the analysis on the service grid itself: ``X`` is ``(days, 24, rows + 2m, cols + 2m, 12)``.
:meth:`Dataset.with_margin` gives the same days with a narrower margin (0: the service grid).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from service.errors import InputFileError
from service.features import FEATURE_NAMES
from service.forecast.tensor import assemble_inputs, load_truth
from service.grid import Grid
from service.settings import GridSpec, Settings
from service.timeaxis import HOURS

log = logging.getLogger(__name__)
F32 = npt.NDArray[np.float32]


@dataclass
class Dataset:
    """Memory-mapped training data for a range of days (inputs with ``margin`` cells beyond
    the service grid on each side)."""

    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.float32]
    dates: list[dt.date]
    margin: int = 0

    def select(self, start: dt.date, end: dt.date) -> Dataset:
        """The days ``start..end`` (inclusive)."""
        idx = [k for k, d in enumerate(self.dates) if start <= d <= end]
        if not idx:
            raise ValueError(f"no days between {start} and {end} in the dataset")
        sl = slice(idx[0], idx[-1] + 1)
        return Dataset(self.x[sl], self.y[sl], self.dates[sl], self.margin)

    def with_margin(self, margin: int) -> Dataset:
        """The same days with inputs ``margin`` (at most :attr:`margin`) cells beyond the grid:
        a view, no copy."""
        if not 0 <= margin <= self.margin:
            raise ValueError(f"margin {margin} is not within the dataset's {self.margin}")
        k = self.margin - margin
        x = self.x[:, :, k : self.x.shape[2] - k, k : self.x.shape[3] - k] if k else self.x
        return Dataset(x, self.y, self.dates, margin)

    @property
    def cmaq(self) -> npt.NDArray[np.float32]:
        """Raw CMAQ PM2.5 on the service grid, ``(days, 24, rows, cols)`` (in memory)."""
        inner = self.with_margin(0).x
        return np.asarray(inner[..., FEATURE_NAMES.index("pm25")])


def _read_day(args: tuple[str, str, GridSpec, int]) -> tuple[F32, F32] | str:
    """One day's input tensor and truth, or the reader's message if the day is unusable."""
    archive, day, grid, margin = args
    settings = Settings(inbox=Path(archive), grid=grid)
    date = dt.date.fromisoformat(day)
    try:
        x = assemble_inputs(date, settings, Grid(grid.widened(margin))).tensor
        y = load_truth(date, settings).data["pm25"].values.astype(np.float32)
    except InputFileError as exc:
        return str(exc)
    return x, y


def build_dataset(
    archive: str | Path,
    start: dt.date,
    end: dt.date,
    cache: str | Path,
    grid: GridSpec | None = None,
    workers: int | None = None,
    progress: bool = True,
    margin: int = 0,
) -> Dataset:
    """Read days ``start..end`` of an archive into a memory-mapped cache (reused if complete).

    With ``margin`` the inputs are read ``margin`` cells beyond the grid on each side (the
    archive's CMAQ and WRF files must cover that window; the analysis is read on the grid).

    Raises
    ------
    InputFileError
        A day's files are missing or bad (the message names the file).
    """
    grid = grid or GridSpec()
    cache = Path(cache)
    days = [start + dt.timedelta(days=k) for k in range((end - start).days + 1)]
    meta = {
        "dates": [d.isoformat() for d in days],
        "features": list(FEATURE_NAMES),
        "grid": grid.model_dump(),
        "archive": str(Path(archive).resolve()),
        "margin": margin,
    }
    meta_path = cache / "dates.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if all(old.get(k, 0 if k == "margin" else None) == v for k, v in meta.items()):
            return open_dataset(cache)
    cache.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)
    shape = (len(days), HOURS, grid.nrows, grid.ncols)
    wide = (len(days), HOURS, grid.nrows + 2 * margin, grid.ncols + 2 * margin)
    x = np.lib.format.open_memmap(cache / "X.npy", "w+", np.float32, (*wide, len(FEATURE_NAMES)))
    y = np.lib.format.open_memmap(cache / "Y.npy", "w+", np.float32, shape)
    jobs = [(str(archive), d.isoformat(), grid, margin) for d in days]
    from tqdm import tqdm

    workers = min(workers or os.cpu_count() or 1, len(jobs))
    skipped: dict[str, str] = {}
    kept = 0
    with ProcessPoolExecutor(workers) as pool:
        results = pool.map(_read_day, jobs, chunksize=4)
        bar = tqdm(zip(days, results, strict=True), total=len(jobs), desc="dataset",
                   disable=not progress)  # fmt: skip
        for day, result in bar:
            if isinstance(result, str):
                skipped[day.isoformat()] = result
                log.warning("skipping %s: %s", day, result)
                continue
            x[kept], y[kept] = result
            kept += 1
    x.flush()
    y.flush()
    del x, y
    meta["kept"] = [d.isoformat() for d in days if d.isoformat() not in skipped]
    meta["skipped"] = skipped
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    return open_dataset(cache)


def open_dataset(cache: str | Path) -> Dataset:
    """Open a complete cache written by :func:`build_dataset`."""
    cache = Path(cache)
    meta = json.loads((cache / "dates.json").read_text())
    kept = meta.get("kept", meta["dates"])
    x = np.load(cache / "X.npy", mmap_mode="r")[: len(kept)]
    y = np.load(cache / "Y.npy", mmap_mode="r")[: len(kept)]
    return Dataset(x, y, [dt.date.fromisoformat(d) for d in kept], int(meta.get("margin", 0)))
