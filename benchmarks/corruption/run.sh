#!/usr/bin/env bash
# RIQL's headline on o2o's zoo data: clean vs randomly corrupted states, actions, rewards and dynamics (rate 0.3,
# scale 1.0) of each dataset, IQL, RIQL and TD3+BC, 3 seeds each: one bench grid and its report.
#   benchmarks/corruption/run.sh OUT CLEAN_DATASET [CLEAN_DATASET ...]
# e.g. o2o collect HalfCheetah-v5 --level medium-replay --out d/HalfCheetah-v5-medium-replay
#      o2o collect Hopper-v5 --level medium --out d/Hopper-v5-medium
#      benchmarks/corruption/run.sh /tmp/corruption d/HalfCheetah-v5-medium-replay d/Hopper-v5-medium
# Environment: STEPS (default 10000), EVAL_EVERY (default 5000), EPISODES (default 10), WORKERS (default 2).
# Re-running resumes: finished corruptions and cells are kept.
set -euo pipefail
out=$1
shift
mkdir -p "$out/data"
datasets=""
for clean in "$@"; do
  name=$(basename "$clean")
  datasets="$datasets,$clean"
  for target in states actions rewards dynamics; do
    corrupted="$out/data/$name-random-$target"
    [ -d "$corrupted" ] || o2o data corrupt "$clean" "$corrupted" --target "$target" --mode random --rate 0.3 \
      --scale 1.0 --seed 0
    datasets="$datasets,$corrupted"
  done
done
o2o bench --algos iql,riql,td3bc --datasets "${datasets#,}" --seeds 3 --steps "${STEPS:-10000}" \
  --eval-every "${EVAL_EVERY:-5000}" --eval-episodes "${EPISODES:-10}" --workers "${WORKERS:-2}" \
  --out "$out/bench" --quiet
o2o report "$out/bench" --out "$out/report"
