#!/usr/bin/env bash
# All GPU checks of the torch executor, in one command (< 10 minutes on one GPU):
#   the CUDA tests of every engine path (step path, fused scans, conv path, fixed point, streaming,
#   lean mode), then short benchmarks on CUDA: Linear + LIF beside the peers, the convolutional
#   benchmark (CSNN T=4/8, SEW-ResNet-18 T=4), and (issue 17) the converted ResNet-18's step cost and its
#   conversion report at T=100 on 1000 images.
# Usage: scripts/gpu_checks.sh [device]     (default cuda; logs under $OUT, else /tmp/n3ml_gpu_checks)
set -euo pipefail
cd "$(dirname "$0")/.."
DEV="${1:-cuda}"
PY="${PYTHON:-.venv/bin/python}"
OUTDIR="${OUT:-/tmp/n3ml_gpu_checks}"
mkdir -p "$OUTDIR"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')"
"$PY" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" | tee "$OUTDIR/device.txt"
start=$(date +%s)
PYNEST_QUIET=1 timeout 300 "$PY" -m pytest -q -p no:cacheprovider -rs tests/backends/torch/test_cuda.py \
    2>&1 | tee "$OUTDIR/tests.txt"
PYNEST_QUIET=1 timeout 120 "$PY" -m pytest -q -p no:cacheprovider -rs tests/backends/torch/test_executor.py \
    -k cuda 2>&1 | tee -a "$OUTDIR/tests.txt"
if grep -q "skipped" "$OUTDIR/tests.txt" && ! grep -q "passed" "$OUTDIR/tests.txt"; then
    echo "the CUDA tests were skipped: torch sees no device" >&2; exit 1
fi
timeout 180 "$PY" benchmarks/bench_executor.py --device "$DEV" --sizes 4096:500,256:1000 --repeats 3 --memory \
    2>&1 | grep -v Triton | tee "$OUTDIR/bench_executor.txt"
timeout 240 "$PY" benchmarks/bench_conv.py --device "$DEV" --repeats 5 2>&1 | grep -v Triton | tee "$OUTDIR/bench_conv.txt"
# issue 17: the conversion report of the CIFAR ResNet-18 at full size (T=100, 1000 images; 111 TFLOP of
# synaptic work: ~31 min at least on the 2-core CPU, benchmarks/README.md) and one step's cost on the GPU
timeout 150 "$PY" benchmarks/bench_snn_step.py --device "$DEV" --batch 256 --steps 20 --repeats 3 \
    --modes "outputs,report (means)" 2>&1 | tee "$OUTDIR/bench_snn_step.txt"
timeout 420 "$PY" benchmarks/bench_resnet_convert.py --device "$DEV" --dtype float32 --images 1000 \
    --report-images 1000 --steps 100 2>&1 | tee "$OUTDIR/bench_resnet_convert.txt"
echo "gpu checks took $(( $(date +%s) - start )) s" | tee "$OUTDIR/time.txt"
