#!/usr/bin/env bash
# The wheelhouse that benchmarks/gpu/check.sh installs from on a GPU machine with no network (issue 32).
#
#   benchmarks/gpu/wheels.sh DIR [--python-version 3.12] [--base BASEDIR]
#
# DIR gets what o2o needs beyond the GPU image (Python 3.12 with JAX + its CUDA 13 plugin, Flax, Optax, NumPy, SciPy,
# h5py, pandas, Matplotlib, rich, typer, tqdm, lxml, cloudpickle, protobuf, absl-py: the device tool's KINDS.md),
# for CPython manylinux x86_64, pinned to the versions o2o's development venv runs (`pip freeze` there):
# Gymnasium, MuJoCo, OGBench and dm_control (OGBench's manipulation envs build their scenes with dm_control.mjcf),
# tensorboardX (`o2o train`'s default logger), and setuptools (`pip install -e .` builds o2o with it, offline).
# Not carried: Ray, Minari, rliable, arch, gymnasium-robotics, W&B (o2o imports them lazily; neither `o2o collect`
# nor `o2o train` on OGBench data reaches them), mujoco-studio (MuJoCo's optional viewer app), dm-tree and labmaze
# (dm_control's suites need them, OGBench does not).
# dm_control's own wheel is 56 MB, 90% the assets of its locomotion tasks and control suite: it is rewritten without
# them as 1.0.52+slim (slim_wheel.py), about 6 MB.
# What travels to that machine (tracked files + DIR) must stay under 64 MiB: the sizes are printed at the end.
#
# --python-version 3.11 builds the same set for another Python (this machine's: a local run of `check.sh --cpu`).
# --base BASEDIR also downloads, with their dependencies, what the GPU image already has (JAX on the CPU and the rest
# of the list above), so that a bare venv can stand in for that machine:  python3 -m venv V &&
# V/bin/pip install --no-index --find-links BASEDIR -r <(ls BASEDIR)  (see tests/test_gpu_check.py).
set -euo pipefail

usage="usage: benchmarks/gpu/wheels.sh DIR [--python-version X.Y] [--base BASEDIR]"
dir="" python_version=3.12 base=""
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) python_version="$2"; shift 2 ;;
    --base) base="$2"; shift 2 ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) echo "error: unknown option $1; $usage" >&2; exit 2 ;;
    *) [ -z "$dir" ] || { echo "error: one DIR only; $usage" >&2; exit 2; }; dir="$1"; shift ;;
  esac
done
[ -n "$dir" ] || { echo "error: DIR missing; $usage" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
pip=(${PIP:-python3 -m pip})
target=(--only-binary=:all: --python-version "$python_version" --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
        --platform manylinux2014_x86_64 --disable-pip-version-check -q)

carried=(gymnasium==1.4.0 farama-notifications==0.0.6 mujoco==4.0.1 mujoco-core==4.0.1 glfw==2.11.0 pyopengl==3.1.10
         dm-control==1.0.52 dm-env==1.6 ogbench==1.2.2 tensorboardx==2.6.5 setuptools==80.9.0)
mkdir -p "$dir"
if ls "$dir"/dm_control-*+slim-*.whl >/dev/null 2>&1; then
  carried=("${carried[@]/dm-control==1.0.52/}")
fi
"${pip[@]}" download --no-deps "${target[@]}" -d "$dir" ${carried[@]}
for wheel in "$dir"/dm_control-1.0.52-*.whl; do
  [ -e "$wheel" ] || continue
  python3 "$here/slim_wheel.py" "$wheel" dm_control/locomotion/ dm_control/suite/ dm_control/blender/ >/dev/null
done

if [ -n "$base" ]; then
  mkdir -p "$base"
  "${pip[@]}" download "${target[@]}" -d "$base" jax==0.10.2 jaxlib==0.10.2 flax==0.12.8 optax==0.2.8 numpy==2.4.6 \
    scipy==1.17.1 h5py==3.16.0 pandas==2.3.3 matplotlib==3.11.2 rich==15.0.0 typer==0.29.2 tqdm==4.70.1 lxml==6.2.0 \
    cloudpickle==3.1.3 protobuf==7.36.2 absl-py==2.5.1 pyparsing==3.3.3
fi

echo "wheelhouse $dir (Python $python_version):"
ls -l "$dir"/*.whl | awk '{printf "  %8.1f MB  %s\n", $5 / 1e6, $9}'
total=$(cat "$dir"/*.whl | wc -c)
root="$(cd "$here/../.." && pwd)"
tracked=$(cd "$root" && git ls-files -z 2>/dev/null | xargs -0 cat 2>/dev/null | wc -c || echo 0)
awk -v w="$total" -v t="$tracked" 'BEGIN {
  printf "  total %.1f MiB; with the repository'"'"'s tracked files (%.1f MiB): %.1f MiB of the 64 MiB one command carries\n",
         w / 2^20, t / 2^20, (w + t) / 2^20 }'
