#!/usr/bin/env bash
# The GPU check: every GPU path of arabicpeft run once on a GPU machine without network, in under 10 minutes,
# every result under one folder. Run from the repository root:
#
#   bash benchmarks/gpu_check.sh [--out DIR] [--budget-s 540]  on the GPU machine (benchmarks/README.md, "The GPU
#                                                              check": the exact call, what it carries)
#   bash benchmarks/gpu_check.sh --cpu [--out DIR]             every step on the tiny random model on a CPU
#   ... --only STEP,STEP                                       those steps alone (the others say so): a rerun
#   bash benchmarks/gpu_check.sh --prepare                     here, with network: the wheels and whisper-base the
#                                                              GPU machine lacks, packed into .gpucheck/part-NN
#
# Steps: preflight (machine, versions, missing packages); notebook 01 end to end (nbclient) once per precision
# (fp16, bf16, int8, nf4 on a GPU; fp32 on a CPU, the others skipped with the reason); the demo (its time against
# the 2-core CPU measurement); benchmarks/gpu.py; benchmarks/data.py; merge + CTranslate2 export of the adapter
# the first notebook run trained; benchmarks/inference.py on the GPU and on the CPU with 2 threads; the training-step
# levers (benchmarks/gpu.py --levers: each alone, then together, against the replaced recipe); the backbone
# table of benchmarks/gpu.py (--backbones: LoRA vs full per architecture, which fit a 16 GB T4). Each step prints
# "ran", "skipped: reason" or "FAILED" and its log is DIR/logs/STEP.log; DIR/summary.txt is the table. Exit code 1
# when a step failed. Where $OUT is set (the device machine), the small files of DIR (no model weights) are packed
# into $OUT/gpu_check.tar.gz and the summary copied to $OUT/summary.txt.
set -u
cd "$(dirname "$0")/.."
MODE=gpu OUTDIR= BUDGET_S= ONLY=
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) MODE=cpu ;;
    --prepare) MODE=prepare ;;
    --out) OUTDIR=$2; shift ;;
    --budget-s) BUDGET_S=$2; shift ;;
    --only) ONLY=",$2,"; shift ;;
    *) echo "gpu_check.sh: unknown option $1 (use --cpu, --prepare, --out DIR, --budget-s SECONDS, --only STEP,...)" >&2
       exit 2 ;;
  esac
  shift
done
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || PY=python

if [ "$MODE" = prepare ]; then exec bash benchmarks/gpu_check_prepare.sh; fi

START=$(date +%s)  # the budget counts the install of the carried wheels too
# Carried wheels (--prepare): join the parts, install them where only this run sees them.
if [ "$MODE" = gpu ] && [ -d .gpucheck ]; then
  ls -l .gpucheck
  (cd .gpucheck && sha256sum --check --quiet manifest.txt) || {
    echo "gpu_check.sh: .gpucheck/ lacks a part or holds a damaged one (above): carry every part named in" \
      ".gpucheck/manifest.txt (benchmarks/README.md, the GPU check)" >&2; exit 2; }
  SITE=/tmp/gpucheck-site
  rm -rf "$SITE" /tmp/gpucheck-wheels && mkdir -p /tmp/gpucheck-wheels
  cat .gpucheck/part-* | tar -x -C /tmp/gpucheck-wheels || { echo "gpu_check.sh: the carried parts do not unpack: carry every .gpucheck/part-NN" >&2; exit 2; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    /tmp/gpucheck-wheels/*.whl || exit 2
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi

# the GPU run must end inside one 10-minute device command; a shared CPU is slow, so its budget is wider
[ -n "$BUDGET_S" ] || { [ "$MODE" = cpu ] && BUDGET_S=1800 || BUDGET_S=540; }
R=${OUTDIR:-runs/gpu-check-$MODE}
rm -rf "$R" && mkdir -p "$R/logs" || exit 2
R=$(cd "$R" && pwd)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
: >"$R/steps.tsv"

# step NAME SKIP_REASON COMMAND...: runs COMMAND (output in logs/NAME.log, its last lines shown), or says why not.
step() {
  local name=$1 why=$2 t0 rc left
  shift 2
  left=$((BUDGET_S - ($(date +%s) - START)))
  if [ -z "$why" ] && [ -n "$ONLY" ] && [ "$name" != preflight ] && [[ "$ONLY" != *",$name,"* ]]; then
    why="not among --only ${ONLY:1:${#ONLY}-2}"
  fi
  if [ -z "$why" ] && [ "$left" -le 10 ]; then why="the check's time budget (${BUDGET_S} s) is spent"; fi
  if [ -n "$why" ]; then
    echo "== skipped $name: $why"
    printf '%s\tskipped\t0\t%s\n' "$name" "$why" >>"$R/steps.tsv"
    return 0
  fi
  echo "== running $name"
  t0=$(date +%s)
  timeout "$left" "$@" >"$R/logs/$name.log" 2>&1
  rc=$?
  tail -n 12 "$R/logs/$name.log" | sed 's/^/   /'
  if [ $rc -eq 0 ]; then
    echo "== ran $name ($(($(date +%s) - t0)) s)"
    printf '%s\tran\t%s\tlogs/%s.log\n' "$name" "$(($(date +%s) - t0))" "$name" >>"$R/steps.tsv"
  else
    [ $rc -eq 124 ] && rc="124: stopped at the time budget"
    echo "== FAILED $name (exit $rc; logs/$name.log)"
    printf '%s\tfailed\t%s\texit %s, logs/%s.log\n' "$name" "$(($(date +%s) - t0))" "$rc" "$name" >>"$R/steps.tsv"
  fi
}
status() { awk -F'\t' -v n="$1" '$1 == n {print $2}' "$R/steps.tsv"; }
why_not() { "$PY" benchmarks/_gpu_check.py why-not "$1" 2>/dev/null || echo "the precision check itself failed"; }

if [ "$MODE" = cpu ]; then
  export ARABICPEFT_PROFILE=ci CUDA_VISIBLE_DEVICES=  # the notebooks' CI path: tiny random model, a few steps
  MODEL=tiny-random STEPS=6 DIALECT=egyptian PRECISIONS="fp32 fp16 bf16 int8 nf4"
else
  export ARABICPEFT_PROFILE=full
  MODEL=whisper-base STEPS=60 DIALECT=all PRECISIONS="fp16 bf16 int8 nf4"
fi

step preflight "" "$PY" benchmarks/_gpu_check.py preflight "$R" "$MODEL"
[ "$(status preflight)" = ran ] || { "$PY" benchmarks/_gpu_check.py summary "$R"; exit 1; }

ADAPTER=
for p in $PRECISIONS; do
  why=$(why_not "$p")
  if [ "$MODE" = cpu ] && [ "$p" = bf16 ] && [ -z "$why" ]; then
    why="the ci profile (ARABICPEFT_PROFILE=ci) trains at fp32; bf16 training on a CPU is tested in tests/test_train.py"
  fi
  step "notebook-01-$p" "$why" "$PY" benchmarks/_gpu_check.py notebook "$R/notebook-01-$p" "$p" "$MODEL" "$STEPS" \
    "$DIALECT"
  if [ -z "$ADAPTER" ] && [ "$(status "notebook-01-$p")" = ran ]; then
    ADAPTER=$(ls -d "$R/notebook-01-$p"/01_*/model | head -n 1)
  fi
done
NO_ADAPTER=
[ -n "$ADAPTER" ] || NO_ADAPTER="no notebook run trained an adapter (see the notebook steps)"
CLIPS=()  # the inference benchmark's clips: every sample test clip on a GPU machine, 2 per test set on a CPU
[ "$MODE" = cpu ] && CLIPS=(--max-clips 2)

if [ "$MODE" = cpu ]; then
  step demo "" env ARABICPEFT_OUTPUT="$R/demo" "$PY" -c "from arabicpeft import train; print(train.demo_model())"
  step gpu-benchmark "" "$PY" benchmarks/gpu.py --models tiny-random --steps 1 --warmup-steps 1 \
    --encoder-seconds 2 --eval-clips 4 --eval-batch-size 4 --max-new-tokens 6 --in-process \
    --recipes seed-int8-lora,lora-fp32,lora-fp16,lora-bf16,lora-nf4,full-gc --output-dir "$R/gpu"
  step levers-benchmark "" "$PY" benchmarks/gpu.py --levers --models tiny-random --steps 1 --warmup-steps 0 \
    --encoder-seconds 2 --matched-seconds 1 --in-process --output-dir "$R/levers"
  step data-benchmark "" "$PY" benchmarks/data.py --model-path tiny-random --steps 1 --output-dir "$R/data"
else
  step demo "" bash -c "\"$PY\" benchmarks/demo.py --output-dir '$R/demo' && \"$PY\" benchmarks/_gpu_check.py demo-vs-cpu '$R/demo'"
  step gpu-benchmark "" "$PY" benchmarks/gpu.py --models small --eval-clips 16 --max-new-tokens 96 --output-dir "$R/gpu"
  # one process for every lever row: step time is what a lever changes (peak memory is not isolated per row)
  step levers-benchmark "" "$PY" benchmarks/gpu.py --levers --models small --in-process --output-dir "$R/levers"
  step data-benchmark "" "$PY" benchmarks/data.py --model-path random-small --workers 4 --output-dir "$R/data"
fi

step merge-export "$NO_ADAPTER" bash -c "\"$PY\" -m arabicpeft merge --model-path '$ADAPTER' --output-dir '$R/merged' \
  && \"$PY\" -m arabicpeft export --model-path '$R/merged' --output-dir '$R/ct2-int8' --quantization int8"
CUDA_WHY=$NO_ADAPTER
if [ -z "$CUDA_WHY" ] && [ "$MODE" = cpu ]; then CUDA_WHY="CTranslate2 float16 / int8_float16 need a CUDA GPU (--cpu run)"; fi
step inference-gpu "$CUDA_WHY" "$PY" benchmarks/inference.py --model-path "$ADAPTER" --device cuda \
  "${CLIPS[@]}" --output-dir "$R/inference-gpu"
step inference-cpu-2threads "$NO_ADAPTER" env CUDA_VISIBLE_DEVICES= "$PY" benchmarks/inference.py \
  --model-path "$ADAPTER" --threads 2 "${CLIPS[@]}" --output-dir "$R/inference-cpu"

# last: the longest step; what does not fit the budget is skipped and listed (rerun it with --only)
if [ "$MODE" = cpu ]; then
  step backbones-benchmark "" "$PY" benchmarks/gpu.py --backbones tiny-whisper-v3,tiny-qwen3-asr --batch-size 1 \
    --steps 1 --warmup-steps 0 --output-dir "$R/backbones"
else
  step backbones-benchmark "" "$PY" benchmarks/gpu.py \
    --backbones whisper-small,whisper-large-v3-turbo,qwen3-asr-0.6b,qwen3-asr-1.7b --steps 3 --warmup-steps 1 \
    --output-dir "$R/backbones"
fi

echo "== the check took $(($(date +%s) - START)) s"
"$PY" benchmarks/_gpu_check.py summary "$R"
rc=$?
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
  # what comes back from the device machine: 8 files at most, so the small files of the run in one archive
  (cd "$R" && find . -type f \( -name '*.json' -o -name '*.log' -o -name '*.txt' -o -name '*.tsv' \
     -o -name '*.ipynb' -o -name '*.jsonl' -o -name '*.md' \) -size -4M -print0 \
     | tar -czf "$OUT/gpu_check.tar.gz" --null -T -)
  cp "$R/summary.txt" "$OUT/summary.txt"
fi
exit $rc
