#!/bin/bash
# A short distillation on the GPU build with real Fashion-MNIST images: a small teacher, then a
# student with [tat_distill] + [anchor_distill] (shared embeddings) on -gpus 0, and one with
# [fitnet_distill] + [kd_distill] (both on the device too); each run must finish, report finite
# distillation losses that fall, and save weights. With two or more GPUs
# also -gpus 0,1 (one teacher per replica, embeddings averaged at each sync). Without a CUDA
# device: one SKIP line.
set -u
: "${DARKNET:?DARKNET must point at the darknet binary of the GPU build}"
. "$(dirname "$0")/../lib.sh"
fashion_subset gpu_distill 3000
data_file valid=data/test.list top=2 > fm.data

{ net_head batch=64 max_batches=150; conv 16 3; pool; conv 32 3; pool; head_out; } > teacher.cfg
{ net_head batch=64 max_batches=100; conv 4 3; pool; conv 8 3; pool
  printf '[tat_distill]\nfrom=-1\nteacher_layer=3\nteacher_channels=32\nsize=3\nkey=learned\ngrid=2,2\ngroups=2\nbn=image\nloss_weight=2\n\n'
  printf '[anchor_distill]\nembeddings=-1\nanchors=3,3\nloss_weight=1\n\n'
  head_out; } > student-tat.cfg
# layers: 0 conv, 1 pool, 2 conv, 3 pool, 4 fitnet, 5 conv, 6 avgpool (logits), 7 kd, 8 softmax;
# the teacher's logits are its layer 5
{ net_head batch=64 max_batches=100; conv 4 3; pool; conv 8 3; pool
  printf '[fitnet_distill]\nfrom=-1\nteacher_layer=3\nteacher_channels=32\nloss_weight=1\n\n'
  logits
  printf '[kd_distill]\nfrom=-1\nteacher_layer=5\ntemperature=4\nloss_weight=1\n\n[softmax]\n'; } > student-baselines.cfg

"$DARKNET" classifier train fm.data teacher.cfg -gpus 0 > teacher.log 2>&1
if grep -q 'needs a CUDA device' teacher.log; then
    echo "SKIP gpu_distill: $(grep -m1 'needs a CUDA device' teacher.log)"
    exit 0
fi
if [ ! -f backup/teacher.weights ]; then
    echo "FAIL gpu_teacher_trains: no backup/teacher.weights; $(tail -n 2 teacher.log | tr '\n' ' ')"
    exit 0
fi

losses_fall() { # losses_fall <name> <log> <iterations> [layer type, default tat_distill]
    local type=${4:-tat_distill}
    grep -o "$type\[[0-9]*\] [^,]*," "$2" | sed 's/^[a-z_]*\[[0-9]*\] \([^,]*\),/\1/' > losses
    local n first last
    n=$(wc -l < losses)
    first=$(head -n 10 losses | mean)
    last=$(tail -n 10 losses | mean)
    echo "INFO $1 $type loss: first-10 mean $first, last-10 mean $last over $n iterations" >&2
    if [ "$n" -ge "$3" ] && ! grep -qi 'nan\|inf' losses && awk -v a="$first" -v b="$last" 'BEGIN {exit !(b < 0.8 * a)}'; then
        echo "PASS $1_loss_falls"
    else
        echo "FAIL $1_loss_falls: $n iterations, first-10 mean $first, last-10 mean $last (want finite, last < 0.8 first)"
    fi
}

start=$(date +%s)
"$DARKNET" distill classifier train fm.data student-tat.cfg teacher.cfg backup/teacher.weights -gpus 0 -seed 7 > run1.log 2> run1.err
rc=$?
echo "INFO gpu distill, 100 iterations of 64 images: $(( $(date +%s) - start )) s" >&2
if [ "$rc" -ne 0 ] || [ ! -f backup/student-tat.weights ]; then
    echo "FAIL gpu_distill_runs: exit $rc; $(tail -n 2 run1.err | tr '\n' ' ')"
    exit 0
fi
echo "PASS gpu_distill_runs"
losses_fall gpu_distill run1.log 100

"$DARKNET" distill classifier train fm.data student-baselines.cfg teacher.cfg backup/teacher.weights -gpus 0 -seed 7 > run3.log 2> run3.err
rc=$?
if [ "$rc" -ne 0 ] || [ ! -f backup/student-baselines.weights ]; then
    echo "FAIL gpu_distill_fitnet_kd_runs: exit $rc; $(tail -n 2 run3.err | tr '\n' ' ')"
else
    echo "PASS gpu_distill_fitnet_kd_runs"
    losses_fall gpu_distill_fitnet run3.log 100 fitnet_distill
    losses_fall gpu_distill_kd run3.log 100 kd_distill
fi

# attention maps read the maps and embeddings back from the device
img=$(head -n 1 data/test.list)
if "$DARKNET" distill attention student-tat.cfg backup/student-tat.weights teacher.cfg backup/teacher.weights \
    "$img" att.png -at 1,1 > att.log 2> att.err && [ -f att.png ] && grep -q 'drawn weights sum 2.0000' att.log; then
    echo "PASS gpu_attention_map"
else
    echo "FAIL gpu_attention_map: $(tail -n 1 att.log) $(tail -n 1 att.err)"
fi

gpus=$(nvidia-smi -L 2> /dev/null | grep -c '^GPU')
if [ "${gpus:-0}" -ge 2 ]; then
    rm -f backup/student-tat.weights
    "$DARKNET" distill classifier train fm.data student-tat.cfg teacher.cfg backup/teacher.weights -gpus 0,1 -seed 7 > run2.log 2> run2.err
    rc=$?
    if [ "$rc" -ne 0 ] || [ ! -f backup/student-tat.weights ] || ! grep -q 'Syncing' run2.log; then
        echo "FAIL gpu_distill_two_gpus: exit $rc; $(tail -n 2 run2.err | tr '\n' ' ')"
    else
        echo "PASS gpu_distill_two_gpus"
        losses_fall gpu_distill_two_gpus run2.log 40
    fi
else
    echo "SKIP gpu_distill_two_gpus: fewer than two GPUs"
fi
