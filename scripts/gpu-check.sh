#!/bin/bash
# The one check to run on a machine with a CUDA GPU (under 8 minutes on a current GPU with a
# dozen cores; each stage has a time limit that keeps it so):
#   1. both GPU builds, CUDNN=0 and CUDNN=1, for this machine's GPU only (its compute
#      capability from nvidia-smi; ARCH from the environment wins),
#   2. on each build the GPU tests: every kernel, embedding, term (materialised and streaming)
#      and every distillation layer type against the CPU code with TF32 off, the update over two
#      steps; a short Fashion-MNIST distillation on -gpus 0 (TaT, then FitNet + KD), and on
#      -gpus 0,1 where there are two GPUs; on the CUDNN=0 build, distributed training over
#      NCCL (a GPU=1 MPI=1 build, mpirun: 1 rank; 2 with two GPUs),
#   3. the cuDNN build's errors in the libraries' default math mode (TF32 allowed), reported,
#   4. the GPU benchmark at the paper's settings: ms per image, and per phase the achieved
#      FP32 rate and attention-matrix bandwidth against the device's peaks.
# Ends with a summary table. Exit status 1 when a build or a test failed.
# Logs: build/gpu-check-*.log.
set -u
cd "$(dirname "$0")/.." || exit 1
jobs=$(nproc 2> /dev/null || echo 2)
mkdir -p build
rows=()
failed=0
row() { rows+=("| $1 | $2 | $3 |"); }

echo "== device"
nvidia-smi -L 2> /dev/null || echo "(nvidia-smi not found)"
if [ -z "${ARCH:-}" ]; then
    cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2> /dev/null | head -n 1 | tr -d ' .')
    [ -n "$cap" ] && ARCH="-gencode arch=compute_$cap,code=sm_$cap"
fi
arch=()
[ -z "${ARCH:-}" ] || arch=("ARCH=$ARCH")
echo "ARCH: ${ARCH:-(Makefile default: every supported GPU)}"

# stage <name> <seconds> <log> <command...>: runs it under a time limit; 0 when it passed
stage() {
    local name=$1 limit=$2 log=$3 start rc
    shift 3
    start=$(date +%s)
    timeout "$limit" "$@" > "$log" 2>&1
    rc=$?
    last_seconds=$(( $(date +%s) - start ))
    [ "$rc" -eq 124 ] && echo "gpu-check: $name stopped after $limit s (log: $log)"
    return "$rc"
}

for cudnn in 0 1; do
    variant=gpu$([ "$cudnn" = 1 ] && echo -cudnn)
    echo "== build $variant"
    if stage "build $variant" 240 "build/gpu-check-build-$variant.log" \
        make -j"$jobs" build gpu-test-bins tools GPU=1 CUDNN="$cudnn" "${arch[@]}"; then
        row "build $variant" ok "$last_seconds s"
    else
        tail -n 20 "build/gpu-check-build-$variant.log"
        row "build $variant" FAILED "$last_seconds s, build/gpu-check-build-$variant.log"
        failed=1
        continue
    fi
    mpi_darknet=
    if [ "$cudnn" = 0 ]; then
        echo "== build gpu-mpi (NCCL)"
        if stage "build gpu-mpi" 180 build/gpu-check-build-gpu-mpi.log \
            make -j"$jobs" build GPU=1 CUDNN=0 MPI=1 "${arch[@]}"; then
            row "build gpu-mpi" ok "$last_seconds s"
            mpi_darknet=$PWD/build/gpu-mpi/darknet
        else
            tail -n 20 build/gpu-check-build-gpu-mpi.log
            row "build gpu-mpi" FAILED "$last_seconds s, build/gpu-check-build-gpu-mpi.log"
            failed=1
        fi
    fi
    echo "== tests $variant (fp32: TF32 off)"
    stage "tests $variant" 150 "build/gpu-check-test-$variant.log" \
        env VERBOSE=1 TESTS_DIR="$PWD/tests/gpu" DARKNET="$PWD/build/$variant/darknet" DARKNET_DIR="$PWD/darknet" \
        DARKNET_MPI="$mpi_darknet" \
        tests/run.sh "$PWD/build/$variant-tests"
    rc=$?
    grep -E '^(PASS|FAIL|SKIP) |^  INFO |^INFO |passed, ' "build/gpu-check-test-$variant.log"
    summary=$(grep -E 'passed, ' "build/gpu-check-test-$variant.log" | tail -n 1)
    nfail=$(grep -c '^FAIL ' "build/gpu-check-test-$variant.log")
    if [ "$rc" -ne 0 ] || [ "$nfail" -ne 0 ]; then failed=1; fi
    row "tests $variant" "$([ "$rc" -eq 0 ] && [ "$nfail" -eq 0 ] && echo ok || echo FAILED)" \
        "${summary:-no summary (exit $rc)}, $last_seconds s"
    for t in test_gpu gpu_distill gpu_distill_runs gpu_distill_loss_falls gpu_distill_fitnet_kd_runs gpu_distill_fitnet_loss_falls \
        gpu_distill_kd_loss_falls gpu_distill_two_gpus gpu_distributed gpu_distributed_2_rank; do
        line=$(grep -E "^(PASS|FAIL|SKIP) $t(:|$)" "build/gpu-check-test-$variant.log" | head -n 1)
        [ -n "$line" ] && row "  $variant: $t" "${line%% *}" "$(echo "${line#* }" | cut -c1-100)"
    done
    if [ "$cudnn" = 1 ]; then
        echo "== cuDNN build in the default math mode (TF32 allowed): errors reported only"
        stage "default math" 60 build/gpu-check-default-math.log build/gpu-cudnn-tests/test_gpu --default-math
        grep 'INFO default math' build/gpu-check-default-math.log | sort -t: -k3 -g | tail -n 5
        worst=$(grep -o 'relative error [0-9.e+-]*' build/gpu-check-default-math.log | awk '{print $3}' | sort -g | tail -n 1)
        row "default math (TF32), cuDNN build" info "largest relative error ${worst:-none}"
    fi
done

echo "== benchmark (paper's settings)"
if [ -x build/bench/bench_gpu ] && stage benchmark 120 build/gpu-check-bench.log build/bench/bench_gpu; then
    cat build/gpu-check-bench.log
    while read -r line; do
        case $line in
            "gpu device"*) row "device" info "${line#gpu device }" ;;
            SKIP*) row "benchmark" SKIP "$(echo "${line#SKIP }" | cut -c1-100)" ;;
            gpu*ms/image*) set -- $line; row "bench $2 (batch $4)" "$5 ms/image" "$(echo "$line" | sed 's/.*(\(.*\))/\1/')" ;;
            gpu*ms/step*) set -- $line; row "  $2 $3" "$4 ms/step" "$(echo "$line" | awk '{$1 = $2 = $3 = $4 = $5 = ""; print}' | sed 's/^ *//')" ;;
        esac
    done < build/gpu-check-bench.log
else
    cat build/gpu-check-bench.log 2> /dev/null | tail -n 5
    row "benchmark" "not run" "see build/gpu-check-bench.log"
fi

echo
echo "== summary"
echo "| check | result | detail |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
if [ "$failed" -ne 0 ]; then
    echo "gpu-check: FAILED (logs: build/gpu-check-*.log)"
    exit 1
fi
if grep -q '^SKIP test_gpu' build/gpu-check-test-gpu.log 2> /dev/null; then
    echo "gpu-check: nothing ran on a GPU: no usable CUDA device here"
else
    echo "gpu-check: passed"
fi
exit 0
