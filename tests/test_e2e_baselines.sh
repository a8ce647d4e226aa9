#!/bin/bash
# The two baseline methods end to end on real Fashion-MNIST images: a small teacher, then a
# smaller student distilled with [kd_distill] (logits) and one with [fitnet_distill] (features),
# each through `distill classifier train`. Each run must finish, report its term in the progress
# lines, see that term fall, and export to a plain student without the distillation layers.
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
fashion_subset e2e_baselines 2000
data_file top=2 > fm.data

# teacher: 0 conv, 1 pool, 2 conv, 3 pool (7x7x32), 4 conv 1x1, 5 avgpool (logits), 6 softmax
{ net_head max_batches=100; conv 16 3; pool; conv 32 3; pool; head_out; } > teacher.cfg
# students: 0 conv, 1 pool, 2 conv, 3 pool (7x7x8), ...
{ net_head max_batches=60; conv 4 3; pool; conv 8 3; pool; logits
  printf '[kd_distill]\nfrom=-1\nteacher_layer=5\ntemperature=4\nloss_weight=1\n\n[softmax]\n'; } > student-kd.cfg
{ net_head max_batches=60; conv 4 3; pool; conv 8 3; pool
  printf '[fitnet_distill]\nfrom=-1\nteacher_layer=3\nteacher_channels=32\nbn=batch\nloss_weight=2\n\n'
  head_out; } > student-fitnet.cfg

"$DARKNET" classifier train fm.data teacher.cfg > teacher.log 2>&1
if [ ! -f backup/teacher.weights ]; then
    echo "FAIL e2e_baselines_teacher_trains: no backup/teacher.weights; $(tail -n 2 teacher.log | tr '\n' ' ')"
    exit 0
fi

run_method() { # run_method <layer type> <name>
    local type=$1 name=$2 n first last v
    "$DARKNET" distill classifier train fm.data "student-$name.cfg" teacher.cfg backup/teacher.weights \
        -seed 3 > "$name.log" 2> "$name.err"
    if [ $? -ne 0 ] || [ ! -f "backup/student-$name.weights" ]; then
        echo "FAIL e2e_${name}_runs: $(tail -n 2 "$name.err" | tr '\n' ' ')"
        return
    fi
    echo "PASS e2e_${name}_runs"
    # "distill: kd_distill[7] 1.234, 1.300 avg;" -> 1.234
    distill_losses "$name.log" "$type" > "$name.losses"
    n=$(wc -l < "$name.losses")
    first=$(head -n 10 "$name.losses" | mean)
    last=$(tail -n 10 "$name.losses" | mean)
    echo "INFO $type loss: mean of the first 10 of $n iterations $first, of the last 10 $last" >&2
    if [ "$n" -eq 60 ] && awk -v a="$first" -v b="$last" 'BEGIN {exit !(b < 0.7 * a && b > 0)}'; then
        echo "PASS e2e_${name}_loss_falls"
    else
        echo "FAIL e2e_${name}_loss_falls: $n iterations, first-10 mean $first, last-10 mean $last (want 0 < last < 0.7 first)"
    fi
    "$DARKNET" distill export "student-$name.cfg" "backup/student-$name.weights" plain.cfg plain.weights > export.log 2>&1
    v=$("$DARKNET" classifier predict fm.data plain.cfg plain.weights "$(head -n 1 data/train.list)" 2>&1 | tail -n 1)
    if grep -q "$type" plain.cfg 2> /dev/null; then
        echo "FAIL e2e_${name}_export: plain.cfg still has [$type]"
    elif [ -s plain.weights ] && [[ $v == *%* ]]; then
        echo "PASS e2e_${name}_export"
    else
        echo "FAIL e2e_${name}_export: $(tail -n 1 export.log); predict said '$v'"
    fi
}
run_method kd_distill kd
run_method fitnet_distill fitnet
