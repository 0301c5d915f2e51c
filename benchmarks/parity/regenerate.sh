#!/usr/bin/env bash
# Regenerates the parity fixtures in tests/fixtures/parity/ from fetched copies of the references (README.md here).
#   benchmarks/parity/regenerate.sh [ALGO ...]        default: every algorithm below
# Environment: O2O_PYTHON (o2o's environment), REFS (the references' work trees and environments).
set -euo pipefail
cd "$(dirname "$0")/../.."
O2O_PYTHON=${O2O_PYTHON:-.venv/bin/python}
REFS=${REFS:-/work/refs}
INPUTS=$(mktemp -d)
trap 'rm -rf "$INPUTS"' EXIT

# inputs case (an algorithm, or ALGO-VARIANT: the adapter ALGO.py on that case's inputs; an algorithm named with a
# hyphen has its adapter with an underscore, sung-cql -> sung_cql.py) -> reference work tree, the environment that
# runs it, extra adapter runs
run() {
  local algo=$1 reference=$2 python=$3
  shift 3
  local adapter=${algo%-finetuning}
  adapter=benchmarks/parity/${adapter//-/_}.py
  [ -f "$adapter" ] || adapter=benchmarks/parity/${algo%%-*}.py
  "$O2O_PYTHON" benchmarks/parity/inputs.py "$algo" --out "$INPUTS/$algo.npz"
  "$python" "$adapter" --reference "$reference" --inputs "$INPUTS/$algo.npz"
  for flag in "$@"; do
    "$python" "$adapter" --reference "$reference" --inputs "$INPUTS/$algo.npz" "$flag"
  done
}

for algo in "${@:-td3bc iql bc rebrac awac cql calql fql dt sacn edac lbsac td3 sac rlpd wsrl riql famo2o qc ro2o sung sung-cql sera}"; do
  for a in $algo; do
    case $a in
      td3bc) run td3bc "$REFS/TD3_BC" "$REFS/.venv/bin/python" ;;
      td3) run td3 "$REFS/TD3" "$REFS/.venv/bin/python" ;;
      sac) run sac "$REFS/jaxrl" "$REFS/.venv-iql/bin/python" --as-is ;;
      rlpd) run rlpd "$REFS/rlpd" "$REFS/.venv-iql/bin/python" ;;
      wsrl) run wsrl "$REFS/wsrl" "$REFS/.venv-wsrl/bin/python" ;;
      iql) run iql "$REFS/implicit_q_learning" "$REFS/.venv-iql/bin/python" ;;
      bc) run bc "$REFS/CORL" "$REFS/.venv/bin/python" ;;
      rebrac) run rebrac "$REFS/ReBRAC" "$REFS/.venv/bin/python" --as-is ;;
      awac) run awac "$REFS/CORL" "$REFS/.venv/bin/python" --as-is ;;
      cql) run cql "$REFS/Cal-QL" "$REFS/.venv-calql/bin/python" --joint-gradients ;;
      calql) run calql "$REFS/Cal-QL" "$REFS/.venv-calql/bin/python"
             run calql-antmaze "$REFS/Cal-QL" "$REFS/.venv-calql/bin/python" ;;
      fql) run fql "$REFS/fql" "$REFS/.venv/bin/python" --as-is ;;
      dt) run dt "$REFS/decision-transformer" "$REFS/.venv-dt/bin/python" ;;
      sacn) run sacn "$REFS/EDAC" "$REFS/.venv/bin/python" --as-is ;;
      edac) run edac "$REFS/EDAC" "$REFS/.venv/bin/python" --as-is ;;
      lbsac) run lbsac "$REFS/lb-sac" "$REFS/.venv/bin/python" --as-is ;;
      riql) run riql "$REFS/RIQL" "$REFS/.venv/bin/python" ;;
      famo2o) run famo2o "$REFS/FamO2O" "$REFS/.venv-iql/bin/python"
              run famo2o-finetuning "$REFS/FamO2O" "$REFS/.venv-iql/bin/python" ;;
      qc) run qc "$REFS/qc" "$REFS/.venv/bin/python"
          run qc-fql "$REFS/qc" "$REFS/.venv/bin/python" ;;
      ro2o) run ro2o "$REFS/RO2O" "$REFS/.venv/bin/python"
            run ro2o-antmaze "$REFS/RO2O" "$REFS/.venv/bin/python"
            run ro2o-antmaze-finetuning "$REFS/RO2O" "$REFS/.venv/bin/python" ;;
      sung) run sung "$REFS/SUNG" "$REFS/.venv/bin/python"
            run sung-finetuning "$REFS/SUNG" "$REFS/.venv/bin/python" ;;
      sung-cql) run sung-cql "$REFS/SUNG" "$REFS/.venv/bin/python"
                run sung-cql-finetuning "$REFS/SUNG" "$REFS/.venv/bin/python" ;;
      sera) "$REFS/.venv/bin/python" benchmarks/parity/sera.py --reference "$REFS/VCSE" ;;  # its own inputs
      *) echo "no parity adapter for $a" >&2; exit 2 ;;
    esac
  done
done
