#!/usr/bin/env bash
# Learning parity at equal budget (issue 28, part 2): o2o and the reference implementation on the same dataset, the
# same hyperparameters, the same number of updates and evaluations, several seeds each; then the verdict.
#   benchmarks/parity/learning.sh OUT_DIR [ALGO ...]       default ALGOs: td3bc iql
# Environment: O2O_PYTHON (o2o's environment), REFS (the references' work trees and environments, README.md here),
# DATASET (an o2o dataset; default: OUT_DIR/hopper-medium, collected by o2o from the zoo), ENV (default Hopper-v5),
# STEPS (20000), EVAL_EVERY (5000), EVAL_EPISODES (10), SEEDS (3). Resumable: finished parts are kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: learning.sh OUT_DIR [ALGO ...]}; shift
ALGOS=${*:-td3bc iql}
for algo in $ALGOS; do  # refused before any training: these run by the commands of benchmarks/results/parity/README.md
  case $algo in fql | rlpd) echo "$algo: OGBench data / an online run: see benchmarks/results/parity/README.md" >&2; exit 2 ;; esac
done
O2O_PYTHON=${O2O_PYTHON:-.venv/bin/python}
O2O="$(dirname "$O2O_PYTHON")/o2o"
REFS=${REFS:-/work/refs}
ENV=${ENV:-Hopper-v5} STEPS=${STEPS:-20000} EVAL_EVERY=${EVAL_EVERY:-5000} EVAL_EPISODES=${EVAL_EPISODES:-10}
SEEDS=${SEEDS:-3}
DATASET=${DATASET:-$OUT/hopper-medium}
mkdir -p "$OUT"
[ -e "$DATASET" ] || $O2O collect "$ENV" --level medium --out "$DATASET" --quiet
NAME=$(basename "$DATASET")
[ -e "$OUT/$NAME.npz" ] || $O2O data convert "$DATASET" "$OUT/$NAME.npz" --format npz
RANGE=$("$O2O_PYTHON" -c "from o2o.envs import normalized_score as n; import sys
low = -n(sys.argv[1], 0.0) / (n(sys.argv[1], 1.0) - n(sys.argv[1], 0.0)); high = low + 100 / (n(sys.argv[1], 1.0) - n(sys.argv[1], 0.0))
print(float(low), float(high))" "$ENV")

# o2o: one bench grid, every algorithm's seeds vmapped in one cell
$O2O bench --algos "${ALGOS// /,}" --datasets "$DATASET" --seeds "$SEEDS" --steps "$STEPS" --eval-every "$EVAL_EVERY" \
  --eval-episodes "$EVAL_EPISODES" --workers 1 --out "$OUT/bench" --quiet

# the references, one CSV per algorithm (seeds 0 .. SEEDS-1)
references=()
for algo in $ALGOS; do
  case $algo in
    td3bc) tree=$REFS/TD3_BC python=$REFS/.venv/bin/python ;;
    iql) tree=$REFS/implicit_q_learning python=$REFS/.venv-iql/bin/python ;;
    rebrac) tree=$REFS/ReBRAC python=$REFS/.venv/bin/python ;;
    edac) tree=$REFS/EDAC python=$REFS/.venv/bin/python ;;
    calql) tree=$REFS/Cal-QL python=$REFS/.venv-calql/bin/python ;;
    famo2o) tree=$REFS/FamO2O python=$REFS/.venv-iql/bin/python ;;
    *) echo "no learning adapter for $algo" >&2; exit 2 ;;
  esac
  csv=$OUT/$algo-reference.csv
  [ -e "$csv" ] || "$python" benchmarks/parity/learn.py "$algo" --reference "$tree" --dataset "$OUT/$NAME.npz" \
    --dataset-name "$NAME" --env "$ENV" --steps "$STEPS" --eval-every "$EVAL_EVERY" --eval-episodes "$EVAL_EPISODES" \
    --seeds $(seq 0 $((SEEDS - 1))) --score-range $RANGE --out "$csv"
  references+=("$algo=$csv")
done
"$O2O_PYTHON" benchmarks/parity/verdict.py --bench "$OUT/bench" --reference "${references[@]}" --out "$OUT/verdict.md"
