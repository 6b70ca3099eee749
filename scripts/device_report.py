"""Write docs/model/REPORT.md from what ``scripts/device_train.py`` brought back.

The device scores every run on the test year where it trained (Keras on JAX) and returns
``metrics.json``, ``maps.npz`` and ``runs.tar``; this writes the report's tables and figures
from them, with the learning curves from each run's ``history.json`` and the notes of
``docs/model/NOTES.md``.

    python scripts/device_report.py /work/.device/7 --out docs/model --command "..."
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.evaluate import write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="the device call's files")
    parser.add_argument("--out", type=Path, default=Path("docs/model"))
    parser.add_argument("--notes", type=Path, default=Path("docs/model/NOTES.md"))
    parser.add_argument("--command", action="append", default=[], help="quoted in the report")
    args = parser.parse_args()
    metrics = json.loads((args.results / "metrics.json").read_text(encoding="utf-8"))
    with np.load(args.results / "maps.npz") as z:
        names = ["analysis", *[k for k in z.files if k != "analysis"]]
        maps = {k: z[k].reshape(-1, *z[k].shape[-2:]).astype(np.float32) for k in names}
    histories = {}
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(args.results / "runs.tar") as tar:
        tar.extractall(tmp, filter="data")
        for path in sorted(Path(tmp).glob("*/history.json")):
            histories[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
    notes = args.notes.read_text(encoding="utf-8") if args.notes.exists() else None
    path = write_report(metrics, args.out, maps, histories, args.command, True, notes)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
