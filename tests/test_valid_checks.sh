#!/bin/bash
# `classifier valid` and `distill classifier valid` check what they read before they run, through
# the binary, on a few Fashion-MNIST images: a labels file shorter than classes, top=-3, top=0,
# top above classes, a valid list whose paths hold no label, an empty valid list and left-out
# weights each end in one line naming the file and the field, exit 1, never a crash or a
# result with exit 0; a good .data file still validates (its top-1 printed).
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
fashion_subset valid_checks 16

{ net_head batch=8 max_batches=2; conv 4 3; pool; head_out; } > plain.cfg
{ net_head batch=8 max_batches=2; conv 4 3; pool; printf '[tat_distill]\nteacher_layer=1\nteacher_channels=4\n\n'; head_out; } > student.cfg
data_file valid=data/train.list > ok.data
"$DARKNET" classifier train ok.data plain.cfg -seed 1 > setup.log 2>&1 &&
    "$DARKNET" distill classifier train ok.data student.cfg plain.cfg backup/plain.weights -seed 1 >> setup.log 2>&1 ||
    { echo "FAIL valid_checks_setup: $(tail -n 1 setup.log)"; exit 0; }

head -n 20 data/test.list > v.list
head -n 5 data/labels.txt > short_labels.txt
for i in $(seq 1 8); do echo "data/ILSVRC2012_val_0000000$i.png"; done > nolabel.list
for i in $(seq 1 8); do cp "$(sed -n "${i}p" v.list)" "data/ILSVRC2012_val_0000000$i.png"; done
: > empty.list
data_file valid=v.list labels=short_labels.txt > short.data
data_file valid=v.list top=-3 > neg.data
data_file valid=v.list top=0 > zero.data
data_file valid=v.list top=11 > big.data
data_file valid=nolabel.list > nolabel.data
data_file valid=empty.list > empty.data
data_file valid=v.list top=2 > good.data

# each case through both commands: plain Darknet's and the plugin's
check() { # check <name> <words> <data> [weights]: both forms refused with these words
    local name=$1 words=$2 data=$3 weights=${4-backup/plain.weights} sweights=${4-backup/student.weights}
    expect_error exit1 "valid_${name}" "$words" "$data" -- "$DARKNET" classifier valid "$data" plain.cfg $weights
    expect_error exit1 "distill_valid_${name}" "$words" "$data" -- "$DARKNET" distill classifier valid "$data" student.cfg $sweights
}
check labels_shorter_than_classes "short_labels.txt 5 labels classes=10 short.data" short.data
check top_negative "neg.data top=-3 1..10" neg.data
check top_zero "zero.data top=0 1..10" zero.data
check top_above_classes "big.data top=11 1..10" big.data
check path_without_label "data/ILSVRC2012_val_00000001.png no label line 1 nolabel.list" nolabel.data
check empty_list "empty.list empty" empty.data
check no_weights "no weights untrained" good.data ""
expect_error exit1 valid_weights_missing "nothere.weights cannot open" -- "$DARKNET" classifier valid good.data plain.cfg nothere.weights

# a good .data file still validates, both ways, with its top-2 line
for cmd in "classifier valid good.data plain.cfg backup/plain.weights" "distill classifier valid good.data student.cfg backup/student.weights"; do
    # shellcheck disable=SC2086
    if "$DARKNET" $cmd > good.log 2> good.err && grep -qE '^19: top 1: [0-9.]+, top 2: [0-9.]+' good.log; then
        echo "PASS valid_good_data_${cmd%% *}"
    else
        echo "FAIL valid_good_data_${cmd%% *}: exit $?; $(tail -n 1 good.log) $(tail -n 1 good.err)"
    fi
done
