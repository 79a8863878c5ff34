#!/usr/bin/env bash
# The paper-cost benchmark on a GPU: installs the CUDA build of JAX into its own venv, then runs
# bench/paper_cost.py with the GPU label, so bench/results/paper_cost.json gets a "gpu" entry next to
# the "cpu" one (and bench/results/resources_gpu.yaml the table a GPU cluster's jobs can be sized from).
#
#   bash bench/gpu.sh                      # on the GPU machine, from the repository root
#
# A GPU has the memory and speed to measure every cell at its own n (--paper-n), so its figures are
# measurements, not fits. Not yet run on a GPU: each cell compiles five processes (10-140 CPU s each on
# CPU), so the whole grid takes about an hour or more; GPU_BENCH_ARGS="--archs vit --opts gd" is one cell.
#   bash bench/gpu.sh --skip-cuda-install  # test the script on CPU with the python3 on PATH
#   GPU_BENCH_ARGS="--archs mamba --steps 2" bash bench/gpu.sh   # passed on to paper_cost.py
#   GPU_GHOST_ARGS="--archs vit --ns 1000" bash bench/gpu.sh      # passed on to ghost_batch.py
#
# Needs python3 >= 3.11 and network access to PyPI on that machine, or a wheel cache in $PIP_FIND_LINKS.
set -euo pipefail
cd "$(dirname "$0")/.."

skip_cuda=0
for arg in "$@"; do
  case "$arg" in
    --skip-cuda-install) skip_cuda=1 ;;
    *) echo "bench/gpu.sh: unknown option '$arg' (valid: --skip-cuda-install)" >&2; exit 2 ;;
  esac
done

label=gpu
python=python3
if (( skip_cuda )); then
  label=gpu-script-test-cpu  # the CPU test of this script: the current python3, nothing installed
else
  venv=.venv-gpu  # its own venv: the CUDA build never lands in another environment
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q -e . "jax[cuda12]"  # the CUDA 12 wheels bring their own CUDA libraries
  python="$venv/bin/python"
  "$python" -c "import jax; assert jax.default_backend() == 'gpu', jax.devices()" || {
    echo "bench/gpu.sh: the CUDA build of JAX sees no GPU (jax.devices() above); nothing measured" >&2
    exit 2
  }
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
"$python" -c "import jax; print('jax', jax.__version__, jax.devices())"
# shellcheck disable=SC2086  # GPU_BENCH_ARGS is a list of options
PYTHONPATH="$PWD/src" "$python" bench/paper_cost.py --label "$label" \
  --resources "bench/results/resources_${label}.yaml" --paper-n ${GPU_BENCH_ARGS:-}
echo "bench/gpu.sh: wrote the '$label' entry of bench/results/paper_cost.json"
# the ViT's and ResNet's HVP at n = 1000 in full and in ghost batches of 100: what a smaller GPU gives up
ghost_default="--archs vit,resnet --ns 1000"
(( skip_cuda )) && ghost_default="--archs mlp --ns 64"
# shellcheck disable=SC2086  # GPU_GHOST_ARGS is a list of options
PYTHONPATH="$PWD/src" "$python" bench/ghost_batch.py --sizes=-1,100 --skip-full-above 100000 \
  --json "bench/results/ghost_batch_${label}.json" ${GPU_GHOST_ARGS:-$ghost_default}
