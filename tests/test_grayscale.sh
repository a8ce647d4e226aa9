#!/bin/bash
# Grayscale networks (`channels=1`) through the real binary, in both training loops: plain
# `classifier train` (it died with munmap_chunk(): invalid pointer), `distill classifier train`
# with a gray teacher and student (a segfault in free_network), plain `segmenter train`; a
# teacher of another channel count and channels=2 are refused with one line, exit 1.
# Needs DARKNET, build/tools/fashion_mnist_to_darknet, build/tools/fashion_seg_to_darknet and
# the Fashion-MNIST package.
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
fashion_subset grayscale 64

data_file > cls.data

# passes <name> <log> <err> <rc> <weights file>: exit 0, the file written, the loss fell
passes() {
    local name=$1 log=$2 err=$3 rc=$4 file=$5 first last
    first=$(grep -E '^[0-9]+, ' "$log" | head -n 3 | sed 's/^[^:]*: \([0-9.]*\),.*/\1/' | mean)
    last=$(grep -E '^[0-9]+, ' "$log" | tail -n 3 | sed 's/^[^:]*: \([0-9.]*\),.*/\1/' | mean)
    if [ "$rc" -eq 0 ] && [ -s "$file" ] && awk -v a="$first" -v b="$last" 'BEGIN {exit !(b < a)}'; then
        echo "PASS $name"
    else
        echo "FAIL $name: exit $rc, loss $first -> $last, $file $( [ -s "$file" ] && echo written || echo missing); $(tail -n 1 "$err")"
    fi
}

{ net_head batch=16 channels=1 learning_rate=0.05 policy=constant max_batches=30; conv 8; pool; head_out; } > teacher.cfg
"$DARKNET" classifier train cls.data teacher.cfg -seed 1 > teacher.log 2> teacher.err
passes gray_plain_classifier_train teacher.log teacher.err $? backup/teacher.weights

{ net_head batch=16 channels=1 learning_rate=0.05 policy=constant max_batches=30; conv 4; pool
  printf '[tat_distill]\nteacher_layer=1\nteacher_channels=8\nloss_weight=1\n\n'
  head_out; } > student.cfg
"$DARKNET" distill classifier train cls.data student.cfg teacher.cfg backup/teacher.weights -seed 2 > student.log 2> student.err
passes gray_distill_classifier_train student.log student.err $? backup/student.weights

sed 's/^channels=1/channels=3/' student.cfg > colour-student.cfg
expect_error exit1 gray_teacher_colour_student_refused "teacher.cfg input 28 x 28 x 1 colour-student.cfg 28 x 28 x 3" -- \
    "$DARKNET" distill classifier train cls.data colour-student.cfg teacher.cfg backup/teacher.weights
sed 's/^channels=1/channels=2/' teacher.cfg > two.cfg
expect_error exit1 two_channels_refused "two.cfg [net] channels=2 1 (grayscale) or 3" -- \
    "$DARKNET" classifier train cls.data two.cfg

# the segmenter loop: the shipped student at channels=1 on a few generated canvases
fashion_seg 32 8 || { echo "FAIL grayscale_seg_generate: $(tail -n 1 gen.log)"; exit 0; }
sed -e 's/^batch=.*/batch=8/' -e 's/^max_batches=.*/max_batches=12/' -e 's/^burn_in=.*/burn_in=0/' -e 's/^channels=3/channels=1/' \
    "$top/cfg/fashion-seg-student.cfg" > seg-gray.cfg
"$DARKNET" segmenter train seg.data seg-gray.cfg -seed 3 > seg.log 2> seg.err
passes gray_plain_segmenter_train seg.log seg.err $? backup/seg-gray.weights
