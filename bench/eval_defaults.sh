#!/usr/bin/env bash
# Quality of the embedded default models on their held-out test splits, beside the baselines (one run each).
#   bash bench/eval_defaults.sh [CLIPS]        -> bench/results/<model>_<task>.json and the tables on stdout
set -euo pipefail
CLIPS=${1:-24}
LIGHTVID=${LIGHTVID:-.venv/bin/lightvid}
mkdir -p bench/results
for job in "mnist keyframes" "mnist interpolate" "mnist predict" "photo keyframes" "photo interpolate" "photo loop"; do
    set -- $job
    $LIGHTVID eval --model "$1" --task "$2" --clips "$CLIPS" --json "bench/results/$1_$2.json"
done
