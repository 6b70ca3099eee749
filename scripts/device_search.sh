#!/usr/bin/env bash
# Calibrate the twin against the network itself: one twin variant per GPU, all at once.
#
#   scripts/device_search.sh CANDIDATES_DIR [device_train.py options...]
#
# Each CANDIDATES_DIR/NAME.args holds one twin override per line (scripts/twin_calibrate.py's
# --set syntax). For each, on its own GPU and a quarter of the cores, scripts/device_train.py
# writes that twin's archive, its calibration report (twin.tar) and trains the runs named in
# the options (e.g. --only case3), keeping the archive in .devwork/NAME for a later call
# (--keep-archive). Everything NAME wrote comes back as $OUT/NAME.tar; one summary line per
# candidate goes to stdout.
set -u
dir=$1
shift
names=()
for f in "$dir"/*.args; do names+=("$(basename "$f" .args)"); done
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
workers=$(( $(nproc) / ${#names[@]} ))
k=0
for name in "${names[@]}"; do
    sets=()
    while IFS= read -r line; do [ -n "$line" ] && sets+=("--set=$line"); done < "$dir/$name.args"
    mkdir -p "$OUT/$name" ".devwork/$name"
    cp "$dir/$name.args" "$OUT/$name/"
    gpu=()
    [ "$gpus" -gt 0 ] && gpu=(--gpu-ids $((k % gpus)))
    "${PYTHON:-python3}" scripts/device_train.py --out "$OUT/$name" --work ".devwork/$name" \
        "${gpu[@]}" --workers "$workers" "${sets[@]}" "$@" \
        > "$OUT/$name/log.txt" 2>&1 &
    k=$((k + 1))
done
wait
for name in "${names[@]}"; do
    echo "== $name: $(paste -sd' ' "$dir/$name.args")"
    grep -E "^(baselines|twin report|case[0-9]|all|residual|margin|weighted|oversample|val_)" \
        "$OUT/$name/log.txt"
    tar -cf "$OUT/$name.tar" -C "$OUT" "$name" && rm -rf "${OUT:?}/$name"
done
