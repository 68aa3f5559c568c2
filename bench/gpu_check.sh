#!/usr/bin/env bash
# The GPU check: the CUDA-marked tests, every bench workload on mnist5k and fashion at both
# precisions, and dcec at schedule: paper on mnist5k, seed 0, into one CSV (bench/gpu_check.py
# says what each part measures). On a GPU node, from the repository root:
#   bash bench/gpu_check.sh                         # under 8 minutes on one GPU
#   bash bench/gpu_check.sh --device cpu --smoke    # what CI runs, so that it cannot rot
set -euo pipefail
cd "$(dirname "$0")/.."
exec python bench/gpu_check.py "$@"
