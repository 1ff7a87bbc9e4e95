#!/usr/bin/env bash
# GPU check: the figures of one NVIDIA GPU in about 8 minutes, with nothing but torch,
# transformers, accelerate and peft installed (and what they pull in: pyyaml, sympy, ...):
# no vLLM, no TRL, no network, no hub.
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, from anywhere
#   bash benchmarks/gpu_check.sh --smoke    # the same parts scaled down, on a CPU (or GPU_CHECK_SMOKE=1)
#   PYTHON=/path/to/python bash benchmarks/gpu_check.sh    # another interpreter than python3
#
# Parts, each under its own time limit (`timeout`), so the whole ends in time even if one hangs:
#   build       a randomly initialised model shaped like Qwen2.5-0.5B, from a config, saved with the
#               project's offline character-level tokenizer                        (75 s)
#   train       20 bf16 GRPO steps of 32 prompts x 8 samples, <= 64 new tokens, with the
#               transformers sampler, `trainers.grpo.train` run in process to read the peak GPU
#               memory; the trainer itself stops after 2 minutes of training       (150 s)
#   train_async the same with `--rollout async --max-staleness 1`: a rollout worker process samples
#               on the same GPU while the trainer updates; 12 steps, stopped after 1 minute of
#               training; training tokens/s against the sync run's               (95 s)
#   cuda_tests  pytest on the tests that need CUDA (marked `gpu`, skipped without CUDA, or named
#               after it: `-p benchmarks.gpu_check` selects them)                  (100 s)
#   report      generation and update tokens/s, async vs sync, peak GPU memory, test counts  (20 s)
# With the check for pytest (15 s), 455 s of limits, plus 5 s of grace each to kill a part that
# ignores its signal: at most 485 s, about 8 minutes.
#
# The report is a markdown table and JSON on stdout, also written as gpu_check.md and
# gpu_check.json to $OUT when it is set, else to benchmarks/results/. A failed part is named on
# stderr, its log tail printed, and the exit status is 1; the other parts still run (train needs
# build). The parts' logs and the run's metrics.jsonl go to gpu_check_logs/ beside them. Work
# files (model, checkpoints) go to a temporary folder, removed at the end unless GPU_CHECK_KEEP=1.
# GPU_CHECK_MAX_PART_S=N lowers every part's limit to at most N seconds.
# benchmarks/gpu_check.py holds the Python side and explains each figure.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
SMOKE=${GPU_CHECK_SMOKE:-0}
for arg in "$@"; do
    case $arg in
        --smoke) SMOKE=1 ;;
        *) echo "usage: bash benchmarks/gpu_check.sh [--smoke]" >&2; exit 2 ;;
    esac
done
SMOKE_FLAG=()
[ "$SMOKE" = 1 ] && SMOKE_FLAG=(--smoke)
RESULTS=${OUT:-$ROOT/benchmarks/results}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || exit 1
cleanup() { [ "${GPU_CHECK_KEEP:-0}" = 1 ] && echo "work files kept in $WORK" >&2 || rm -rf "$WORK"; }
trap cleanup EXIT
# Nothing may reach the network; the tiny model's cache (unused here) stays out of $HOME.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export VERIRL_CACHE=$WORK/cache
FAILED=0
MAX_PART_S=${GPU_CHECK_MAX_PART_S:-600}
case $MAX_PART_S in ''|*[!0-9]*) echo "GPU_CHECK_MAX_PART_S must be a number of seconds" >&2; exit 2 ;; esac

# part NAME LIMIT_S COMMAND...: run COMMAND under `timeout`, its output on stdout and in
# $WORK/NAME.log, and record NAME<TAB>status<TAB>seconds in $WORK/status.tsv.
part() {
    local name=$1 limit=$2 start rc status
    shift 2
    [ "$limit" -gt "$MAX_PART_S" ] && limit=$MAX_PART_S
    echo "== $name (limit ${limit}s): $*"
    start=$(date +%s)
    # timeout signals the command's whole process group: pytest's children too.
    timeout -k 5 "$limit" "$@" 2>&1 | tee "$WORK/$name.log"
    rc=${PIPESTATUS[0]}
    case $rc in
        0) status=ok ;;
        124|137) status="timed out after ${limit}s" ;;
        *) status="failed (exit $rc)" ;;
    esac
    record "$name" "$status" $(( $(date +%s) - start ))
    if [ "$status" != ok ]; then
        FAILED=1
        echo "gpu_check: part $name $status; the end of its log:" >&2
        tail -n 20 "$WORK/$name.log" >&2
    fi
}

record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$WORK/status.tsv"; }

part build 75 "$PY" benchmarks/gpu_check.py build "$WORK/model" "${SMOKE_FLAG[@]}"
if [ -f "$WORK/model/config.json" ]; then
    part train 150 "$PY" benchmarks/gpu_check.py train "$WORK/model" "$WORK/run" --max-minutes 2 "${SMOKE_FLAG[@]}"
    part train_async 95 "$PY" benchmarks/gpu_check.py train "$WORK/model" "$WORK/run_async" --rollout async \
        --max-minutes 1 "${SMOKE_FLAG[@]}"
else
    record train "skipped: no model (build failed)" 0
    record train_async "skipped: no model (build failed)" 0
    FAILED=1
fi

if timeout -k 5 15 "$PY" -c "import pytest" 2>/dev/null; then
    # Only files that mention CUDA or a GPU are collected: the others may import what this
    # machine lacks (TRL, vLLM, datasets). A file that still fails to import is counted as an error.
    # This script's own tests would run it again.
    mapfile -t FILES < <(grep -l -i -E "cuda|gpu" tests/test_*.py tests/*/test_*.py | grep -v -x tests/test_gpu_check.py)
    if [ ${#FILES[@]} -gt 0 ]; then
        part cuda_tests 100 "$PY" -m pytest -q -p no:cacheprovider -p benchmarks.gpu_check \
            --continue-on-collection-errors --junitxml="$WORK/cuda_tests.xml" "${FILES[@]}"
    else
        record cuda_tests "skipped: no test file mentions CUDA" 0
    fi
else
    record cuda_tests "skipped: pytest is not installed (pip install pytest)" 0
    echo "gpu_check: part cuda_tests skipped: $PY has no pytest" >&2
    FAILED=1
fi

timeout -k 5 20 "$PY" benchmarks/gpu_check.py report "$WORK" "$RESULTS" "${SMOKE_FLAG[@]}" || FAILED=1
# The parts' logs and the run's metrics go with the figures (a few kB), to read a failure later.
mkdir -p "$RESULTS/gpu_check_logs"
cp "$WORK"/*.log "$WORK/status.tsv" "$RESULTS/gpu_check_logs/" 2>/dev/null
cp "$WORK/run/metrics.jsonl" "$RESULTS/gpu_check_logs/" 2>/dev/null
cp "$WORK/run_async/metrics.jsonl" "$RESULTS/gpu_check_logs/metrics_async.jsonl" 2>/dev/null
exit $FAILED
