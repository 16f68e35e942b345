#!/usr/bin/env bash
# One-shot CUDA check of the fast paths, for a fresh GPU machine with this repository at its root.
#
#   bash benchmarks/gpu_check.sh            # OUT=/some/dir to also keep the JSON reports there
#
# 1. checks that torch with CUDA and the package's dependencies import (nothing is installed:
#    the package runs from ./src);
# 2. runs the CUDA tests: every fast path on CUDA matches fp32 within tolerance
#    (`pytest -m cuda tests/inference/test_runtime.py`);
# 3. benchmarks 256x256 with 0, 1 and 8 instances: eager fp32 vs fp32 fast path vs fp16 / bf16
#    (batched fusion, the CUDA default), fp16 with CUDA graphs, fp16 with streamed fusion;
#    networks alone and end to end, and a folder of 1 MP photos (table + JSON);
# 4. if time is left, fp16 + torch.compile at 8 instances (skipped when it cannot finish in time).
# Budget: under 5 minutes; every step has its own time limit.
set -u
cd "$(dirname "$0")/.."
START=$(date +%s)
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
OUT_DIR="${OUT:-}"
REPORT_DIR="${OUT_DIR:-$(mktemp -d)}"
mkdir -p "$REPORT_DIR"
PY="${PYTHON:-python3}"
elapsed() { echo $(( $(date +%s) - START )); }
say() { echo "[gpu_check $(elapsed)s] $*"; }

say "repository: $PWD"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

if ! TORCH_LINE=$($PY -c "import torch; print(torch.__version__, torch.cuda.is_available())" 2>&1); then
    say "FAILED: torch is not installed for $PY on this machine (import torch: ${TORCH_LINE##*$'\n'})."
    say "Nothing was run. Provide a Python with torch built for CUDA (pip from PyPI is unavailable here)."
    exit 3
fi
say "torch: $TORCH_LINE"
case "$TORCH_LINE" in
    *True) ;;
    *) say "FAILED: torch imports but CUDA is not available (CPU-only build or no driver)."; exit 3 ;;
esac

MISSING=$($PY - <<'EOF'
import importlib
needed = ["numpy", "PIL", "safetensors", "kornia", "typer", "rich", "platformdirs", "skimage", "pytest"]
missing = []
for name in needed:
    try:
        importlib.import_module(name)
    except Exception:
        missing.append(name)
print(" ".join(missing))
EOF
)
if [ -n "$MISSING" ]; then
    say "FAILED: missing Python packages: $MISSING (needed by instcolor and its tests). Nothing was run."
    exit 3
fi
$PY -c "import instcolor, instcolor.inference" || { say "FAILED: instcolor does not import from ./src"; exit 3; }

STATUS=0
say "step 1/3: CUDA tests (limit 100 s)"
timeout 100 $PY -m pytest -q -m cuda -p no:cacheprovider tests/inference/test_runtime.py -o addopts="" -ra 2>&1 | tail -25
TEST_STATUS=${PIPESTATUS[0]}
[ "$TEST_STATUS" -eq 0 ] || { say "CUDA tests FAILED (status $TEST_STATUS)"; STATUS=1; }

say "step 2/3: benchmark 256x256, 0/1/8 instances, eager vs fp32 / fp16 (+graphs) / bf16 (limit 150 s)"
timeout 150 $PY -m instcolor.cli bench --device cuda --paths eager,fp32,fp16,fp16+graphs,fp16+streamed,bf16 --instances 0,1,8 \
    --sizes 256 --repeats 4 --folder-images 4 --detector none --no-isolate \
    --targets benchmarks/targets.json --json "$REPORT_DIR/bench_gpu.json" 2>&1 | tail -60
BENCH_STATUS=${PIPESTATUS[0]}
[ "$BENCH_STATUS" -eq 0 ] || { say "benchmark FAILED (status $BENCH_STATUS)"; STATUS=1; }

LEFT=$(( 280 - $(elapsed) ))
if [ "$LEFT" -gt 60 ]; then
    say "step 3/3: fp16 + torch.compile, 8 instances (limit $LEFT s)"
    timeout "$LEFT" $PY -m instcolor.cli bench --device cuda --paths fp16,fp16+compile --instances 8 \
        --sizes 256 --repeats 10 --folder-images 0 --detector none --no-isolate --networks-only \
        --json "$REPORT_DIR/bench_gpu_compile.json" 2>&1 | tail -25
    COMPILE_STATUS=${PIPESTATUS[0]}
    [ "$COMPILE_STATUS" -eq 0 ] || say "compile step did not finish (status $COMPILE_STATUS; 124 = time limit): optional"
else
    say "step 3/3: skipped (only $LEFT s left)"
fi

say "reports: $REPORT_DIR"
ls -l "$REPORT_DIR"/*.json 2>/dev/null
say "done, status $STATUS"
exit $STATUS
