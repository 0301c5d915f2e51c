#!/usr/bin/env bash
# The GPU check of issue 32, in one command: install o2o and the carried wheels offline, then run check.py.
#
#   bash benchmarks/gpu/check.sh [--cpu] [--wheels DIR] [check.py's options: --out DIR --budget S --parts ... ]
#
# --wheels DIR: the wheelhouse that benchmarks/gpu/wheels.sh built (default: none, o2o's needs already installed).
# $PYTHON picks the interpreter (default python3). Results: $OUT (else ./gpu-check)/check.json, check.md, check.log.
# On the device machine (no network, 64 MiB carried, 8 minutes): here, once,
#   echo /.whl/ >> .git/info/exclude && bash benchmarks/gpu/wheels.sh .whl
# then one call with carry [".whl"] and a timeout of about 560 s:  bash benchmarks/gpu/check.sh --wheels .whl
set -euo pipefail
export O2O_CHECK_STARTED="${O2O_CHECK_STARTED:-$(date +%s.%N)}"  # check.py's budget counts the installation too
cd "$(dirname "$0")/../.."
python="${PYTHON:-python3}"
wheels="" args=() out="${OUT:-gpu-check}"
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) wheels="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
mkdir -p "$out"
if [ -n "$wheels" ]; then
  # every carried wheel but setuptools (only the build of o2o below needs it, from the same folder)
  mapfile -t carried < <(ls "$wheels"/*.whl | grep -v '/setuptools-')
  "$python" -m pip install -q --disable-pip-version-check --no-index --no-deps --find-links "$wheels" "${carried[@]}"
  "$python" -m pip install -q --disable-pip-version-check --no-index --no-deps --find-links "$wheels" -e .
fi
export PYTHONUNBUFFERED=1
"$python" benchmarks/gpu/check.py --out "$out" "${args[@]}" 2>&1 | tee "$out/check.log"
