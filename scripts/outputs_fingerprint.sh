#!/usr/bin/env bash
# Fingerprint what must not change in a behaviour-preserving refactor: the twin's files for two
# days and the shipped model's forecast for one day. Run it on two commits and diff the output.
#   scripts/outputs_fingerprint.sh [WORKDIR]      (prints "sha256  path" lines)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$(mktemp -d)}"
rm -rf "$OUT/inbox" "$OUT/db.sqlite"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
export PYTHONPATH="$REPO" TF_CPP_MIN_LOG_LEVEL=3
cd "$REPO"
$PY -m service.cli twin --start 2022-01-09 --end 2022-01-10 --out "$OUT/inbox" --workers 2 >/dev/null 2>&1
export PM25_INBOX="$OUT/inbox" PM25_DATABASE_URL="sqlite:///$OUT/db.sqlite" PM25_INPUT_SETTLE_SECONDS=0
$PY -m service.cli migrate >/dev/null 2>&1
$PY -m service.cli run --date 2022-01-09 >/dev/null 2>&1
$PY - "$OUT" <<'PY'
import sqlite3, sys
from pathlib import Path
out = Path(sys.argv[1])
data = sqlite3.connect(out / "db.sqlite").execute("select data from run_fields").fetchone()[0]
(out / "forecast.bin").write_bytes(data)
PY
cd "$OUT"
find inbox -type f | sort | xargs sha256sum
sha256sum forecast.bin
