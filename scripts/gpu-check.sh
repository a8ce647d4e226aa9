#!/bin/bash
# Everything a machine with a CUDA GPU should run, in one go (about 5 minutes on a current
# GPU, most of it the build):
#   1. the GPU build (GPU=1; ARCH from the environment if set, e.g. ARCH='-gencode
#      arch=compute_90,code=sm_90' to build for one GPU only and save build time),
#   2. the GPU tests: every kernel and both distillation layers against the CPU code, a
#      short GPU distillation on Fashion-MNIST (-gpus 0; -gpus 0,1 too with two GPUs), and
#      distributed training over NCCL (GPU=1 MPI=1 build, mpirun: 1 rank; 2 with two GPUs),
#   3. the GPU benchmark at the paper's settings (ms per image, forward + backward).
# Exit status: that of the tests (the benchmark only prints).
set -u
cd "$(dirname "$0")/.." || exit 1
jobs=$(nproc 2> /dev/null || echo 2)
arch=()
[ -z "${ARCH:-}" ] || arch=("ARCH=$ARCH")

echo "== device"
nvidia-smi -L 2> /dev/null || echo "(nvidia-smi not found)"

echo "== build (GPU=1)"
mkdir -p build
start=$(date +%s)
make -j"$jobs" build GPU=1 "${arch[@]}" > build/gpu-check-build.log 2>&1 || {
    tail -n 20 build/gpu-check-build.log
    echo "gpu-check: the GPU build failed (full log: build/gpu-check-build.log)"
    exit 1
}
echo "built in $(( $(date +%s) - start )) s"

echo "== tests (make test-gpu)"
VERBOSE=1 make -j"$jobs" test-gpu "${arch[@]}" > build/gpu-check-test.log 2>&1
status=$?
grep -E '^(PASS|FAIL|SKIP) |^  INFO |passed, |Error' build/gpu-check-test.log
summary=$(grep -E 'passed, ' build/gpu-check-test.log | tail -n 1)

echo "== benchmark (make bench-gpu)"
timeout 240 make bench-gpu "${arch[@]}" 2>&1 | grep -E '^(gpu|SKIP) '

if [ "$status" -ne 0 ]; then
    echo "gpu-check: tests FAILED ($summary; full log: build/gpu-check-test.log)"
elif case $summary in "0 passed"*) true ;; *) false ;; esac; then
    echo "gpu-check: nothing ran on a GPU ($summary): no usable CUDA device here"
else
    echo "gpu-check: tests passed ($summary)"
fi
exit "$status"
