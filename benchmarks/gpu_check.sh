#!/usr/bin/env bash
# The GPU check, in one prepared run on a CUDA machine (CI has no GPU: these tests skip there):
# the CUDA tests, then the GPU benchmark (cuDNN path vs torch.nn, masked and unmasked, float32 and
# bfloat16/float16 autocast). Results land under benchmarks/ for committing.
#
#   bash benchmarks/gpu_check.sh          # from the repository root, after the README's install
set -euo pipefail
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU here'; print(torch.cuda.get_device_name())"
KERAS_BACKEND=torch python -m pytest -q -rs tests 2>&1 | tee benchmarks/results-gpu-tests.txt  # CUDA tests run here
python benchmarks/bench_gpu.py --out benchmarks/results-gpu.json | tee benchmarks/results-gpu.txt
