#!/bin/bash
# Distributed training on GPUs (MPI=1 GPU build: NCCL all-reduce on device buffers): a short
# Fashion-MNIST [tat_distill] distillation on 1 rank (device 0), and with two or more GPUs on
# 2 ranks (one device each, picked by the local rank). Each run must exit 0, save weights and
# report its ranks bit-identical at the last iteration; the 2-rank run must report finite
# losses like the 1-rank run. Without a CUDA device or the MPI GPU build: one SKIP line.
set -u
if [ -z "${DARKNET_MPI:-}" ] || [ ! -x "${DARKNET_MPI:-}" ]; then
    echo "SKIP gpu_distributed: no MPI GPU build (DARKNET_MPI)"
    exit 0
fi
gpus=$(nvidia-smi -L 2> /dev/null | grep -c '^GPU ')
if [ "$gpus" -lt 1 ]; then
    echo "SKIP gpu_distributed: no CUDA device"
    exit 0
fi
. "$(dirname "$0")/../lib.sh"
fashion_subset gpu_distributed 2000
mpi() { timeout 300 mpirun --oversubscribe --allow-run-as-root -np "$@"; }
{ net_head batch=64 max_batches=50; conv 16 3; pool; conv 32 3; pool; head_out; } > teacher.cfg
student() { net_head batch="$1" max_batches=30; conv 4 3; pool; conv 8 3; pool
    printf '[tat_distill]\nfrom=-1\nteacher_layer=3\nteacher_channels=32\nsize=3\nkey=learned\ngrid=1,1\nbn=batch\nloss_weight=2\n\n'
    head_out; }
student 64 > one.cfg
student 32 > two.cfg
for d in t r1 r2; do
    mkdir -p "$d"
    data_file valid=data/test.list backup="$d" > "$d.data"
done
"$DARKNET_MPI" classifier train t.data teacher.cfg -seed 1 > teacher.log 2>&1
if [ ! -f t/teacher.weights ]; then
    echo "FAIL gpu_distributed_teacher: $(tail -n 1 teacher.log)"
    exit 0
fi
run() { # run <name> <ranks> <cfg>
    mpi "$2" "$DARKNET_MPI" distill classifier train "$1.data" "$3" teacher.cfg t/teacher.weights -seed 5 > "$1.log" 2> "$1.err"
    local rc=$? base
    base=$(basename "$3" .cfg)
    if [ "$rc" -eq 0 ] && [ -f "$1/$base.weights" ] &&
        grep -q "^mpi: iteration 30: parameters bit-identical on all $2 ranks" "$1.log" &&
        ! grep -qiE 'nan|inf' <(grep -E '^[0-9]+, ' "$1.log"); then
        echo "PASS gpu_distributed_${2}_rank"
        grep -m 1 '^mpi: .*images/s' "$1.log" | sed 's/^/INFO /' >&2
    else
        echo "FAIL gpu_distributed_${2}_rank: exit $rc; $(tail -n 2 "$1.err" | tr '\n' ' ')"
    fi
}
run r1 1 one.cfg
if [ "$gpus" -ge 2 ]; then
    run r2 2 two.cfg
else
    echo "SKIP gpu_distributed_2_rank: one GPU"
fi
