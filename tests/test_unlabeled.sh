#!/bin/bash
# unlabeled= / unlabeled_fraction= through the binary: in `distill classifier train` an
# all-unlabelled run has a task loss of 0 at every iteration while its distillation term is
# trained (two KD weights give different students: the term's gradient reaches the network),
# a mixed run has both; `distill segmenter train` with the field; plain `classifier train`
# and `segmenter train` refuse it; bad fields, a [cost] task loss and a bad image in the list
# are one line naming the .data file (or the cfg) and the field; `distill check` checks the
# list. Needs DARKNET, the tools and the Fashion-MNIST package.
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
fashion_subset unlabeled 200

# the last 100 images, whose paths do name a label, are the unlabelled ones
head -n 100 data/train.list > data/labelled.list
tail -n 100 data/train.list > data/unl.list
data_file train=data/labelled.list > plain.data
data_file train=data/labelled.list unlabeled=data/unl.list unlabeled_fraction=1 > all.data
data_file train=data/labelled.list unlabeled=data/unl.list unlabeled_fraction=0.5 > half.data

{ net_head batch=16 learning_rate=0.05 policy=constant max_batches=10; conv 8; pool; head_out; } > teacher.cfg
"$DARKNET" classifier train plain.data teacher.cfg -seed 1 > teacher.log 2> teacher.err ||
    { echo "FAIL unlabeled_teacher: $(tail -n 1 teacher.err)"; exit 0; }
student() { # student <kd weight>
    net_head batch=16 learning_rate=0.05 policy=constant max_batches=6
    conv 4; pool; logits
    printf '[kd_distill]\nteacher_layer=3\nloss_weight=%s\ntemperature=4\n\n[softmax]\n' "$1"
}
student 1 > student.cfg
student 3 > student3.cfg

task_losses() { grep -E '^[0-9]+, ' "$1" | sed 's/^[^:]*: \([0-9.]*\),.*/\1/'; }

run() { # run <data> <cfg> <log>
    "$DARKNET" distill classifier train "$1" "$2" teacher.cfg backup/teacher.weights -seed 2 > "$3" 2> "$3.err"
}
run all.data student.cfg all.log; rc=$?
task=$(task_losses all.log | sort -u | tr '\n' ' ')
kd=$(distill_losses all.log kd_distill | mean)
if [ "$rc" -eq 0 ] && [ "$task" = "0.000000 " ] && awk -v k="$kd" 'BEGIN {exit !(k > 0.01)}'; then
    echo "PASS unlabeled_only_no_task_loss"
else
    echo "FAIL unlabeled_only_no_task_loss: exit $rc, task losses '$task', kd mean '$kd'; $(tail -n 1 all.log.err)"
fi
cp backup/student.weights all-kd1.weights
run all.data student3.cfg all3.log
if ! cmp -s all-kd1.weights backup/student3.weights && [ -s backup/student3.weights ]; then
    echo "PASS unlabeled_distillation_gradient_kept"
else
    echo "FAIL unlabeled_distillation_gradient_kept: KD weights 1 and 3 on unlabelled images only gave the same student"
fi

run half.data student.cfg half.log; rc=$?
zeros=$(task_losses half.log | grep -c '^0\.000000$')
n=$(task_losses half.log | wc -l)
if [ "$rc" -eq 0 ] && [ "$n" -eq 6 ] && [ "$zeros" -eq 0 ] && [ -n "$(distill_losses half.log kd_distill)" ]; then
    echo "PASS unlabeled_half_both_terms"
else
    echo "FAIL unlabeled_half_both_terms: exit $rc, $n iterations, $zeros with no task loss; $(tail -n 1 half.log.err)"
fi

# refusals
expect_error exit1 unlabeled_plain_classifier_refused "half.data unlabeled=data/unl.list plain classifier train" -- \
    "$DARKNET" classifier train half.data teacher.cfg
data_file train=data/labelled.list unlabeled=data/none.list > missing.data
expect_error exit1 unlabeled_missing_list "missing.data unlabeled= data/none.list" -- \
    "$DARKNET" distill classifier train missing.data student.cfg teacher.cfg backup/teacher.weights
for f in 0 1.5 abc -0.2; do
    data_file train=data/labelled.list unlabeled=data/unl.list "unlabeled_fraction=$f" > bad.data
    expect_error exit1 "unlabeled_fraction_${f//[^a-z0-9]/_}_refused" "bad.data unlabeled_fraction=$f (0, 1]" -- \
        "$DARKNET" distill classifier train bad.data student.cfg teacher.cfg backup/teacher.weights
done
data_file train=data/labelled.list unlabeled_fraction=0.5 > alone.data
expect_error exit1 unlabeled_fraction_without_list "alone.data unlabeled_fraction=0.5 without unlabeled=" -- \
    "$DARKNET" distill classifier train alone.data student.cfg teacher.cfg backup/teacher.weights
sed 's/^\[softmax\]$/[cost]/' student.cfg > cost.cfg
expect_error exit1 unlabeled_cost_layer_refused "cost.cfg [cost] unlabeled= [softmax]" -- \
    "$DARKNET" distill classifier train half.data cost.cfg teacher.cfg backup/teacher.weights

# distill check: the list's images are loaded, not labelled
"$DARKNET" distill check half.data > check.log 2> check.err
if [ $? -eq 0 ] && grep -q '100 unlabeled images (fraction 0.5): 0 problems' check.log; then
    echo "PASS unlabeled_check_list"
else
    echo "FAIL unlabeled_check_list: $(tail -n 1 check.log) $(tail -n 1 check.err)"
fi
{ head -n 3 data/unl.list; echo data/not-there.png; } > data/unl-bad.list
data_file train=data/labelled.list unlabeled=data/unl-bad.list > badimg.data
expect_error exit1 unlabeled_check_bad_image "data/not-there.png cannot load image data/unl-bad.list" -- \
    "$DARKNET" distill check badimg.data
data_file train=data/labelled.list unlabeled=data/unl.list unlabeled_fraction=2 > badcheck.data
expect_error exit1 unlabeled_check_fraction "badcheck.data unlabeled_fraction=2" -- "$DARKNET" distill check badcheck.data

# the segmenter loop: plain refuses, distill trains; all unlabelled: no task loss
fashion_seg 24 4 || { echo "FAIL unlabeled_seg_generate: $(tail -n 1 gen.log)"; exit 0; }
small() { sed -e 's/^batch=.*/batch=8/' -e "s/^max_batches=.*/max_batches=$2/" -e 's/^burn_in=.*/burn_in=0/' "$top/cfg/$1"; }
small fashion-seg-teacher.cfg 3 > seg-teacher.cfg
small fashion-seg-student-tat.cfg 3 > seg-student.cfg
"$DARKNET" segmenter train seg.data seg-teacher.cfg -seed 1 > segt.log 2> segt.err ||
    { echo "FAIL unlabeled_seg_teacher: $(tail -n 1 segt.err)"; exit 0; }
sed -n 's/^train=//p' seg.data | xargs cat > seg-unl.list
{ cat seg.data; echo unlabeled=seg-unl.list; echo unlabeled_fraction=1; } > seg-all.data
{ cat seg.data; echo unlabeled=seg-unl.list; echo unlabeled_fraction=0.5; } > seg-half.data
expect_error exit1 unlabeled_plain_segmenter_refused "seg-all.data unlabeled=seg-unl.list plain segmenter train" -- \
    "$DARKNET" segmenter train seg-all.data seg-teacher.cfg
"$DARKNET" distill segmenter train seg-all.data seg-student.cfg seg-teacher.cfg backup/seg-teacher.weights -seed 2 > sega.log 2> sega.err
rc=$?
task=$(task_losses sega.log | sort -u | tr '\n' ' ')
if [ "$rc" -eq 0 ] && [ "$task" = "0.000000 " ] && [ -n "$(distill_losses sega.log)" ]; then
    echo "PASS unlabeled_seg_only_no_task_loss"
else
    echo "FAIL unlabeled_seg_only_no_task_loss: exit $rc, task losses '$task'; $(tail -n 1 sega.err)"
fi
"$DARKNET" distill segmenter train seg-half.data seg-student.cfg seg-teacher.cfg backup/seg-teacher.weights -seed 2 > segh.log 2> segh.err
rc=$?
zeros=$(task_losses segh.log | grep -c '^0\.000000$')
if [ "$rc" -eq 0 ] && [ "$zeros" -eq 0 ] && [ "$(task_losses segh.log | wc -l)" -eq 3 ]; then
    echo "PASS unlabeled_seg_half_trains"
else
    echo "FAIL unlabeled_seg_half_trains: exit $rc, $zeros iterations with no task loss; $(tail -n 1 segh.err)"
fi
