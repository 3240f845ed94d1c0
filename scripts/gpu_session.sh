#!/usr/bin/env bash
# The checks to run when a GPU machine is lent: one call of at most 10 minutes, every step bounded by
# `timeout`, results under $OUT (default _build/gpu-session). The lent image has torch but no Jupyter,
# so this uses the two scripts that need none:
#
#   1. the benchmark page at full sizes on the GPU      -> $OUT/benchmarks.md
#   2. the chapter-1 U-Net at its PRESET (`gpu`) sizes, STEPS steps in each speed setting
#      (fp32; bf16; bf16 + channels-last + torch.compile)                  -> $OUT/unet_preset_speed.json
#      (training images/s over all STEPS: the compiled run's include compiling the first step; train_ddp.py
#      uses bf16 only on CUDA, so a CPU rehearsal's "bf16" runs are float32)
#
# The timeouts add up to 540 s, so the call fits the device's 10-minute command limit with the start.
# Where the Jupyter stack is installed, `python scripts/check_gpu_preset.py --device cuda` next runs every
# notebook with its `gpu` models for a few steps.
#
#   OUT=/tmp/gs bash scripts/gpu_session.sh                          # on the GPU machine (python3 there has torch)
#   DEVICE=cpu QUICK=1 PRESET=smoke STEPS=2 OUT=/tmp/gs bash scripts/gpu_session.sh  # rehearsal on a CPU
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-_build/gpu-session}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
PRESET=${PRESET:-gpu}
STEPS=${STEPS:-200}
QUICK=${QUICK:+--quick}
WORK=$(mktemp -d)
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"

{
    date -u
    nvidia-smi 2>&1 | head -15
    $PY -c "import torch; print('torch', torch.__version__, 'cuda available', torch.cuda.is_available())"
} >"$OUT/device.txt" 2>&1

echo "== 1. benchmarks ($DEVICE)"
timeout 300 $PY -m benchmarks.run_all --device "$DEVICE" $QUICK --model-timeout 40 --loop-budget 30 --out "$OUT/benchmarks.md" \
    >"$OUT/benchmarks.log" 2>&1
echo "benchmarks exit $?"

echo "== 2. U-Net at the $PRESET preset, $STEPS steps per setting"
for setting in fp32 bf16 bf16-cl-compile; do
    case $setting in
        fp32) options=(--no-amp) limit=60 ;;
        bf16) options=(--amp) limit=60 ;;
        bf16-cl-compile) options=(--amp --channels-last --compile) limit=120 ;;
    esac
    timeout $limit $PY scripts/train_ddp.py --preset "$PRESET" --steps "$STEPS" --device "$DEVICE" "${options[@]}" \
        --run-dir "$WORK/unet-$setting" 2>&1 | grep -v "it/s\]" | tail -3
    echo "$setting exit ${PIPESTATUS[0]}"
done
$PY - "$WORK" "$OUT/unet_preset_speed.json" <<'EOF'
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
runs = {}
for run in sorted(work.glob("unet-*")):
    if (run / "metrics.json").is_file() and (run / "config.json").is_file():
        metrics, config = json.loads((run / "metrics.json").read_text()), json.loads((run / "config.json").read_text())
        runs[run.name] = {"config": config, "train_images_per_second": metrics["train_images_per_second"],
                          "unet": metrics["results"]["unet"]}
out.write_text(json.dumps(runs, indent=2))
print(f"{len(runs)} U-Net runs recorded in {out}")
EOF

rm -rf "$WORK"
