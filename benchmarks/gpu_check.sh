#!/usr/bin/env bash
# The project's check on a GPU machine, one script, everything under one output folder.
#
#   bash benchmarks/gpu_check.sh OUT_DIR          # on a CUDA machine (about 6-8 minutes on one GPU)
#   bash benchmarks/gpu_check.sh --dry OUT_DIR    # the same steps on the CPU at toy sizes (CI runs this)
#
# Steps (each writes its files and appends to OUT_DIR/summary.md; a failing step is recorded
# and the script goes on, so one run gives every answer it can):
#   1. machine: nvidia-smi, torch and CUDA versions
#   2. the tiny configuration end to end with its trainings on CUDA
#   3. kill-and-resume on CUDA equals an uninterrupted run; deterministic reruns are bit-identical,
#      non-deterministic ones agree to a measured tolerance
#   4. oucr bench at 320 x 320 for every method at paper widths: fp32 deterministic (the paper
#      protocol) and bf16 fast kernels, with peak memory; the two other combinations for OUCR and
#      D5C5; Kiu-net at batch 1 and 4 (fp32, checkpointing)
#   5. DDP over every visible GPU when there are several (equality with one process)
#   6. oucr plan for config/paper.yaml from the bench of step 4
# Run it from the repository root with the project installed (README).

set -uo pipefail
DRY=0
if [ "${1:-}" = "--dry" ]; then DRY=1; shift; fi
OUT=${1:-${OUT:-gpu_check_out}}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SUMMARY="$OUT/summary.md"
PY=${PYTHON:-python}
: > "$SUMMARY"
START=$(date +%s)

note() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }
step() {  # step NAME COMMAND...: run, log to OUT/NAME.log, record status and seconds
    local name=$1; shift
    local t0; t0=$(date +%s)
    "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    note "- step \`$name\`: $([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc, see $name.log)") in $(( $(date +%s) - t0 )) s"
    return 0
}

if [ $DRY -eq 1 ]; then  # the code paths at toy sizes, quickly
    DEVICE=cpu; SIZE=32; BENCH_CONFIG=config/tiny.yaml; MIN_S=0.01; EPOCHS=2; METHODS="OUCR"
else
    DEVICE=cuda; SIZE=320; BENCH_CONFIG=config/paper.yaml; MIN_S=1.0; EPOCHS=3
    METHODS="CS UNet KIKI-Net Kiu-net D5C5 PC-RNN OUCR"
fi
note "# GPU check ($( [ $DRY -eq 1 ] && echo 'CPU dry mode' || echo CUDA )), $(date -u +%Y-%m-%dT%H:%MZ)"
note ""

# 1. machine ------------------------------------------------------------------------------------
step machine bash -c "nvidia-smi 2>&1 || echo 'no nvidia-smi'; $PY - <<'EOF'
import torch, platform
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())
print('gpus', torch.cuda.device_count(), [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
print('python', platform.python_version(), platform.machine())
EOF"
NGPU=$($PY -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
note "  GPUs visible: $NGPU"

# 2. the tiny configuration end to end, trainings on the GPU ---------------------------------------
$PY - "$OUT" "$DEVICE" <<'EOF'
import sys, yaml
out, device = sys.argv[1], sys.argv[2]
config = yaml.safe_load(open("config/tiny.yaml"))
config["results"] = f"{out}/tiny"
# jobs share the one GPU (an explicit device claims no lock): the check wants speed, not isolation
config["training"]["device"] = "cuda:0" if device == "cuda" else "cpu"
yaml.safe_dump(config, open(f"{out}/tiny.yaml", "w"), sort_keys=False)
EOF
if [ $DRY -eq 1 ]; then
    step tiny_workflow $PY -m snakemake -n --cores 2 --configfile "$OUT/tiny.yaml"
else
    step tiny_workflow $PY -m snakemake --cores "$(nproc)" --configfile "$OUT/tiny.yaml"
    [ -f "$OUT/tiny/tables/table1.md" ] && { note ""; note "Tiny Table 1 (trainings on $DEVICE):"; note ""; cat "$OUT/tiny/tables/table1.md" >> "$SUMMARY"; }
fi

# 3. resume and determinism on the device ------------------------------------------------------------
step resume_and_determinism $PY benchmarks/gpu_resume_check.py --device "$DEVICE" --epochs "$EPOCHS" --out "$OUT/resume" \
    $([ $DRY -eq 1 ] && echo --quick)
[ -f "$OUT/resume/summary.md" ] && cat "$OUT/resume/summary.md" >> "$SUMMARY"

# 4. bench at paper widths -----------------------------------------------------------------------------
BENCH="$PY -m oucr bench --config $BENCH_CONFIG --size $SIZE --batch-size 1 --device $DEVICE --min-seconds $MIN_S --timeout 240"
step bench_fp32_deterministic $BENCH --methods $METHODS --amp none --deterministic --out "$OUT/bench_fp32_det.csv"
step bench_bf16_fast $BENCH --methods $METHODS --amp bf16 --no-deterministic --no-loader --out "$OUT/bench_bf16_fast.csv"
if [ $DRY -eq 0 ]; then  # the cost of each setting alone, on two networks
    step bench_fp32_fast $BENCH --methods D5C5 OUCR --amp none --no-deterministic --no-loader --out "$OUT/bench_fp32_fast.csv"
    step bench_bf16_deterministic $BENCH --methods D5C5 OUCR --amp bf16 --deterministic --no-loader --out "$OUT/bench_bf16_det.csv"
fi
for batch in $([ $DRY -eq 1 ] && echo 1 || echo 1 4); do
    step "bench_kiunet_b$batch" $PY -m oucr bench --config "$BENCH_CONFIG" --size "$SIZE" --batch-size $batch \
        --device "$DEVICE" --min-seconds "$MIN_S" --timeout 300 --methods Kiu-net --amp none --checkpointing \
        --no-loader --out "$OUT/bench_kiunet_b$batch.csv"
done
$PY - "$OUT" >> "$SUMMARY" 2>&1 <<'EOF'
import glob, sys
import pandas as pd
from oucr.tables import to_markdown
out = sys.argv[1]
cols = ["method", "batch_size", "amp", "deterministic", "checkpointing", "train_slices_per_s", "infer_ms_per_slice",
        "peak_mem_mb", "first_step_s", "loader_slices_per_s", "loader_headroom", "error"]
for path in sorted(glob.glob(f"{out}/bench_*.csv")):
    frame = pd.read_csv(path).reindex(columns=cols)
    frame = frame.apply(lambda c: c.map(lambda v: f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else v)))
    print(f"\n`{path.rsplit('/', 1)[-1]}`\n")
    print(to_markdown(frame.fillna("-")))
EOF

# 5. DDP over every visible GPU ------------------------------------------------------------------------
if [ "$NGPU" -gt 1 ] || [ $DRY -eq 1 ]; then
    NPROC=$([ $DRY -eq 1 ] && echo 2 || echo $(( NGPU < 4 ? NGPU : 4 )))  # the global batch is 4
    step ddp $PY benchmarks/gpu_resume_check.py --device "$DEVICE" --epochs "$EPOCHS" --nproc "$NPROC" --out "$OUT/ddp"
    [ -f "$OUT/ddp/summary.md" ] && cat "$OUT/ddp/summary.md" >> "$SUMMARY"
else
    note "- step \`ddp\`: skipped (one GPU)"
fi

# 6. the cost plan of the paper protocol -------------------------------------------------------------------
# slice counts without the data: the paper's HPKS split (102/14/28 subjects x 15 slices) and fastMRI's
# published single-coil counts (34,742 training slices, 5 % of the subjects held out for validation,
# of which training.val_volumes = 20 volumes of ~35 slices are scored; 7,135 test slices)
PLAN_SIZES=()  # the dry bench is at toy size: plan the paper protocol at that size
if [ $DRY -eq 1 ]; then PLAN_SIZES=(--set "datasets.brain.size=[$SIZE,$SIZE]" --set "datasets.fastmri.size=[$SIZE,$SIZE]"); fi
step plan $PY -m oucr plan --config config/paper.yaml --bench "$OUT/bench_fp32_det.csv" "${PLAN_SIZES[@]}" \
    --slices brain=1530:210:420 --slices fastmri=33005:700:7135 \
    --gpus "$([ "$NGPU" -gt 0 ] && echo "$NGPU" || echo 1)" --gpu-memory 80 --out "$OUT/plan.csv"
{ echo; echo '```'; cat "$OUT/plan.log"; echo '```'; } >> "$SUMMARY"

note ""
note "total: $(( $(date +%s) - START )) s; files in $OUT"
