"""How much of the twin's CMAQ error simple corrections remove: a proxy for what a network learns.

Simulates whole years in memory (as ``scripts/twin_calibrate.py``), fits on every year but the
last and scores on the last, against the analysis:

- a per-cell line ``a + b * CMAQ`` (the linear row of docs/model/REPORT.md);
- that line plus a weather-aware regression of its residual, shared by all cells: CMAQ times
  humidity, rain, wind speed and temperature, its peak shape, a 5x5-cell mean of CMAQ, and
  an intercept and CMAQ slope for each hour of the day (the night-time boundary layer).

The regression sees what Case 3's inputs show about the twin's weather-dependent biases; the
network does somewhat better still (it also sees neighbours and the day's sequence). On the
fourth calibration's twin (fit 2020, scored 2021) the regression gave 19.4% / 23.0% lower
hourly / spatial RMSE where Case 3 (trained 2019-2021, scored 2022) gave 20.1% / 27.5%.

    python scripts/twin_learnable.py --years 2020 2021 --set-file scripts/twin_candidates/fifth.set
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.twin_calibrate import (
    add_settings_arguments,
    apply_settings,
    block_jobs,
    fit_per_cell_line,
    scores,
    settings_of,
)
from service.settings import GridSpec
from service.twin.archive import WRF_MARGIN, Twin

F = npt.NDArray[np.float64]
#: One day on the service grid: analysis, CMAQ PM2.5, humidity, rain (mm/h), wind, temperature.
Day = tuple[F, F, F, F, F, F]


def _block(args: tuple[int, dt.date, list[str]]) -> list[tuple[dt.date, Day]]:
    seed, start, settings = args
    apply_settings(settings)
    twin = Twin(GridSpec(), seed)
    srows, scols = twin._service_rows, twin._service_cols
    out = []
    for f in twin.simulate_block(start):
        cmaq = f.cmaq["pm25"][:, srows, scols]
        ny, nx = cmaq.shape[1:]
        r0, c0 = WRF_MARGIN + srows.start, WRF_MARGIN + scols.start
        w = {k: v[:, r0 : r0 + ny, c0 : c0 + nx] for k, v in f.weather.items()}
        day = (
            f.analysis,
            cmaq,
            w["humidity"][1:],
            np.diff(w["rain_accumulated"], axis=0),
            np.hypot(w["u"][1:], w["v"][1:]),
            w["temperature"][1:],
        )
        out.append((f.day, tuple(x.astype(np.float32) for x in day)))
    return out  # type: ignore[return-value]


def features(cmaq: F, humidity: F, rain: F, wind: F, temperature: F) -> F:
    """The regression's columns for one day: (24 * cells, k)."""
    from scipy.ndimage import uniform_filter

    c = cmaq.astype(np.float64)
    smooth = uniform_filter(c, size=(1, 5, 5), mode="nearest")
    cols = [
        c * humidity,
        c * rain,
        c * np.minimum(rain, 2.0),
        c * wind,
        c * temperature,
        c * np.tanh(c / 30) / (1 + c / 40),
        smooth,
        smooth * humidity,
        c * c / 100,
    ]
    hour = np.arange(c.shape[0])[:, None, None]
    for h in range(c.shape[0]):
        mask = np.broadcast_to((hour == h).astype(np.float64), c.shape)
        cols += [c * mask, mask]
    return np.stack([np.asarray(x, dtype=np.float64).ravel() for x in cols], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--years", type=int, nargs="+", default=[2020, 2021])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    add_settings_arguments(parser)
    args = parser.parse_args()
    jobs = block_jobs(args.years, args.seed, settings_of(args))
    years: dict[int, dict[dt.date, Day]] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for days in pool.map(_block, jobs):
            for day, fields in days:
                if day.year in args.years:  # a block straddling two years: keep each day once
                    years.setdefault(day.year, {})[day] = fields
    test = max(years)
    train = [d for y, v in years.items() if y != test for d in v.values()]
    tested = list(years[test].values())

    intercept, slope = fit_per_cell_line([(d[0], d[1]) for d in train])

    xtx: F | float = 0.0
    xty: F | float = 0.0
    for an, cmaq, *wx in train:
        x = features(cmaq, *wx)
        xtx = xtx + x.T @ x
        xty = xty + x.T @ (an - intercept - slope * cmaq).ravel()
    gram = np.asarray(xtx)
    ridge = 1e-6 * np.trace(gram) / len(gram) * np.eye(len(gram))
    coef = np.linalg.solve(gram + ridge, np.asarray(xty))

    def line(cmaq: F) -> F:
        return intercept + slope * cmaq.astype(np.float64)

    rows = {
        "raw CMAQ": [(d[0], d[1]) for d in tested],
        "per-cell line": [(d[0], np.maximum(line(d[1]), 0.0)) for d in tested],
        "line + weather regression": [
            (d[0], np.maximum(line(d[1]) + (features(*d[1:]) @ coef).reshape(d[1].shape), 0.0))
            for d in tested
        ],
    }
    raw_h, raw_s = scores(rows["raw CMAQ"])
    print(f"fit on {sorted(set(years) - {test})}, scored on {test} (seed {args.seed})")
    for name, pairs in rows.items():
        h, s = scores(pairs)
        print(
            f"{name:26s} hourly {h:6.3f} ({100 * (1 - h / raw_h):5.1f}% lower)  "
            f"spatial {s:6.3f} ({100 * (1 - s / raw_s):5.1f}% lower)"
        )


if __name__ == "__main__":
    main()
