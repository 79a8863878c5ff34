#!/usr/bin/env bash
# The GPU device check (bench/device_check.py; bench/README.md): on a GPU machine, offline, in one call of
# at most 8 minutes, it measures per architecture at its paper n the HVP's time and TFLOP/s, full float32
# against TF32, the device memory of the eigen-solver's block and of the third derivatives (whole batch
# and chunked), a warm discrete and central step, and 20 steps of a ci cell on the CPU and the GPU side
# by side; it writes OUT/gpu.json and OUT/resources_gpu.yaml (OUT: bench/results unless --out).
#
#   bash bench/gpu.sh [--out DIR]              # on the GPU machine, from the repository root
#   bash bench/gpu.sh --resume [--out DIR]     # a second call: the parts the first left undone
#   bash bench/gpu.sh --cpu-test [--out DIR]   # the same script on CPU at small sizes (label
#                                              # gpu-script-test-cpu: never the GPU's files)
#   bash bench/gpu.sh --build-wheelhouse PKG.. # here, with network: wheels for a machine that lacks PKG
#
# Other options go to bench/device_check.py (--budget, --parts, --archs, --check-cell; --help).
# Nothing is fetched: it runs with the python3 there (JAX with its CUDA plugin, flax, optax, numpy, h5py,
# pyyaml, tqdm) and the project on PYTHONPATH. Wheels in bench/wheels (ignored by git) are installed
# first, offline, into a folder of their own. It has not yet run on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
wheels=bench/wheels

if [[ "${1:-}" == "--build-wheelhouse" ]]; then
  # For a machine without PKG: pure-Python or manylinux wheels for CPython 3.12 on x86-64 (the GPU
  # machines' python3), without their dependencies (name each one the machine lacks too).
  shift
  (($#)) || {
    echo "bench/gpu.sh --build-wheelhouse: name the packages (e.g. jsonschema)" >&2
    exit 2
  }
  "$python" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$wheels" "$@"
  exit 0
fi

if compgen -G "$wheels/*.whl" >/dev/null; then
  site=${TMPDIR:-/tmp}/centralflows-wheels
  "$python" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site" "$wheels"/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false # each part's peak device memory is its own
export PYTHONUNBUFFERED=1
if [[ " $* " != *" --cpu-test "* ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null ||
    echo "bench/gpu.sh: no nvidia-smi here" >&2
fi
exec "$python" bench/device_check.py "$@"
