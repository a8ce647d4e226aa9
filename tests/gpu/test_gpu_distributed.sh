#!/bin/bash
# Distributed training on GPUs (MPI=1 GPU build: NCCL all-reduce on device buffers): a short
# Fashion-MNIST [tat_distill] distillation on 1 rank (device 0), and with two or more GPUs on
# 2 ranks (one device each, picked by the local rank). Each run must exit 0, save weights and
# report its ranks bit-identical at the last iteration; the 2-rank run must report finite
# losses like the 1-rank run. The 1-rank run is compared with the same distillation outside a
# launch (the same binary, no MPI, no NCCL): its ranks draw their mini-batches from their own
# streams, so not the same images, but over the last 10 iterations its distillation loss must
# be within 30% of the plain run's (an all-reduce that lost, doubled or zeroed the gradients
# would not be). Without a CUDA device, the MPI GPU build or mpirun: one SKIP line.
set -u
if [ -z "${DARKNET_MPI:-}" ] || [ ! -x "${DARKNET_MPI:-}" ]; then
    echo "SKIP gpu_distributed: no MPI GPU build (DARKNET_MPI)"
    exit 0
fi
# MPI_SINGLETON=1 (scripts/gpu-check.sh, where Open MPI is not installed): the 1-rank runs start
# without mpirun, as an isolated singleton; the 2-rank run needs mpirun
if ! command -v mpirun > /dev/null && [ "${MPI_SINGLETON:-0}" != 1 ]; then
    echo "SKIP gpu_distributed: no mpirun (Open MPI) on this machine"
    exit 0
fi
gpus=$(nvidia-smi -L 2> /dev/null | grep -c '^GPU ')
if [ "$gpus" -lt 1 ]; then
    echo "SKIP gpu_distributed: no CUDA device"
    exit 0
fi
. "$(dirname "$0")/../lib.sh"
fashion_subset gpu_distributed 2000
mpi() {
    if command -v mpirun > /dev/null; then
        timeout 300 mpirun --oversubscribe --allow-run-as-root -np "$@"
    else
        shift # 1 rank: PMI_RANK makes the plugin join the (singleton) job
        PMI_RANK=0 timeout 300 "$@"
    fi
}
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
# the same run outside a launch: plain training on one GPU
mkdir -p plain && data_file valid=data/test.list backup=plain > plain.data
"$DARKNET_MPI" distill classifier train plain.data one.cfg teacher.cfg t/teacher.weights -seed 5 > plain.log 2> plain.err
plain_loss=$(distill_losses plain.log | tail -n 10 | mean)
nccl_loss=$(distill_losses r1.log | tail -n 10 | mean)
if [ -f plain/one.weights ] && [ -n "$plain_loss" ] && [ -n "$nccl_loss" ] &&
    awk -v a="$nccl_loss" -v b="$plain_loss" 'BEGIN {d = a - b; if (d < 0) d = -d; exit !(b > 0 && d <= 0.3 * b)}'; then
    echo "PASS gpu_distributed_1_rank_matches_plain"
else
    echo "FAIL gpu_distributed_1_rank_matches_plain: last-10 tat_distill loss ${nccl_loss:-none} over NCCL, ${plain_loss:-none} without MPI (want within 30%); $(tail -n 1 plain.err)"
fi
echo "INFO gpu_distributed last-10 tat_distill loss: 1 rank over NCCL $nccl_loss, plain $plain_loss" >&2
if [ "$gpus" -ge 2 ] && ! command -v mpirun > /dev/null; then
    echo "SKIP gpu_distributed_2_rank: no mpirun (Open MPI) on this machine"
elif [ "$gpus" -ge 2 ]; then
    run r2 2 two.cfg
else
    echo "SKIP gpu_distributed_2_rank: one GPU"
fi
