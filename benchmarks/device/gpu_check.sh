#!/usr/bin/env bash
# The GPU check of issue 13 (README, "Parallel workers"), prepared for one device call:
# evaluator throughput with --device cuda (predictor, SubnetEvaluator, 1 and 4 actors on
# fractional GPUs), then one supernet-scored dsm-sync search over 4 workers with 1, 2 and 4
# GPU actors and dsm with 4 (benchmarks/bench_workers_supernet.py). Output in $OUT.
#
# Here first: bash benchmarks/device/pack.sh. Then one device call:
#   run(command="bash benchmarks/device/gpu_check.sh", carry=[".whl", ".device"], timeout_s=540)
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="/tmp/site:$PWD"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
{ nvidia-smi -L; python3 -c "import torch, ray, ofa, gymnasium, torch_geometric; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'ray', ray.__version__)"; } 2>&1 | tee "$OUT/env.txt"
timeout 200 python3 benchmarks/bench_evaluators.py --device cuda --predictor .device/acc_predictor.pth \
    --actors 1 4 --n-archs 32 --out "$OUT/evaluators.json" 2>&1 | tee "$OUT/evaluators.log"
timeout 280 python3 benchmarks/bench_workers_supernet.py --device cuda --actors 1 2 4 --workers 4 \
    --queries 48 --out "$OUT/workers_supernet.json" 2>&1 | tee "$OUT/workers_supernet.log"
