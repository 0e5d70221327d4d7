#!/usr/bin/env bash
# Quality of an embedded default model on its held-out test split, beside the baselines (one run per task).
#   bash bench/eval_defaults.sh MODEL [CLIPS] [STEPS]     e.g. bash bench/eval_defaults.sh mnist 32
# Each task runs twice: with the model's defaults (its shipped few-step student if it has one, else its own
# sampler and step count) and with --steps STEPS (default 1: the model itself, one step from sigma_max: its
# posterior-mean estimate, which PSNR favours; `photo`, whose default is 1 step, compares with 4). Writes
# bench/results/<model>_<task>[_<STEPS>step].json; `python bench/results_table.py MODEL` prints the tables.
set -euo pipefail
MODEL=$1
CLIPS=${2:-32}
STEPS=${3:-1}
LIGHTVID=${LIGHTVID:-.venv/bin/lightvid}
case $MODEL in
    mnist) TASKS="keyframes interpolate extend loop" ;;
    *) TASKS="keyframes interpolate animate loop" ;;
esac
mkdir -p bench/results
for task in $TASKS; do
    $LIGHTVID eval --model "$MODEL" --task "$task" --clips "$CLIPS" -o "bench/results/${MODEL}_${task}.json"
    $LIGHTVID eval --model "$MODEL" --task "$task" --clips "$CLIPS" --steps "$STEPS" \
        -o "bench/results/${MODEL}_${task}_${STEPS}step.json"
done
