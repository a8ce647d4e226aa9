#!/bin/bash
# No command or tool writes onto what it reads, and what it says about files is true: through
# the binary and the tools on a few Fashion-MNIST images. `distill segmenter valid -out` into
# the mask or image folder, `distill attention` onto an input, the converters onto their inputs;
# a file-size limit below the weights size, a user's own <file>.tmp beside a backup, a backup
# replaced by another run, CRLF and blank lines in the .data and list files, random=1 in a
# distilled cfg, NaN tensors, symlink loops, and attention's default positions on an anchor layer.
# Each refusal: one line, exit 1, every file already on disk unchanged.
# Needs DARKNET, build/tools/fashion_mnist_to_darknet + fashion_seg_to_darknet and the data.
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
fashion_subset output_safety 16
tools=${TOOLS_DIR:-$top/tools}

# every file below the folders given, with its sum: `kept <name>` fails when any changed
remember() { find "$@" -type f -print0 | sort -z | xargs -0 sha256sum > sums.txt; }
kept() {
    if sha256sum --quiet -c sums.txt > /dev/null 2>&1; then echo "PASS $1"
    else echo "FAIL $1: $(sha256sum -c sums.txt 2>&1 | grep -v ': OK' | head -n 3 | tr '\n' ' ')"; fi
}

cfg() { # cfg [distill sections...]: 28x28x3, conv 8, pool (14x14), the sections, 10 classes
    net_head batch=8 subdivisions=1 learning_rate=0.01 policy= max_batches=2
    printf '[convolutional]\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n'
    pool
    local s
    for s; do printf '%s\n\n' "$s"; done
    head_out
}
cfg > teacher.cfg
# anchors 4,4 on the 14x14 map: 3x3 windows, rows and columns 12-13 take no part
cfg "$(printf '[tat_distill]\nteacher_layer=1\nteacher_channels=8')" \
    "$(printf '[anchor_distill]\nembeddings=-1\nanchors=4,4')" > student.cfg
data_file > ok.data
"$DARKNET" classifier train ok.data teacher.cfg -seed 1 > setup.log 2>&1 &&
    "$DARKNET" distill classifier train ok.data student.cfg teacher.cfg backup/teacher.weights -seed 1 >> setup.log 2>&1 ||
    { echo "FAIL output_safety_setup: $(tail -n 1 setup.log)"; exit 0; }
img=$(head -n 1 data/train.list)

# ---- distill attention: out.png is an input ---------------------------------------------------
cp "$img" image.png
cp backup/student.weights s.weights
cp backup/teacher.weights t.weights
remember image.png s.weights t.weights student.cfg teacher.cfg
attention() { "$DARKNET" distill attention student.cfg s.weights teacher.cfg t.weights image.png "$@"; }
for case in "student_weights s.weights" "teacher_weights t.weights" "image image.png" \
            "student_cfg ./student.cfg" "teacher_cfg teacher.cfg"; do
    set -- $case
    expect_error exit1 "attention_out_is_the_$1" "$2 distill attention same file refusing" -- attention "$2"
done
kept attention_inputs_unchanged
attention att.png > att.log 2>&1 && [ -f att.png ] && echo "PASS attention_writes_a_new_png" ||
    echo "FAIL attention_writes_a_new_png: $(tail -n 1 att.log)"
ls ./*.tmp* > /dev/null 2>&1 && echo "FAIL attention_leaves_no_temporary: $(ls ./*.tmp*)" ||
    echo "PASS attention_leaves_no_temporary"
# no -at on the anchor layer: the default corner 13,13 lies in the columns the pooling leaves out
"$DARKNET" distill attention student.cfg backup/student.weights teacher.cfg backup/teacher.weights "$img" anchor.png -layer 3 > anchor.log 2>&1
rc=$?
if [ "$rc" -eq 0 ] && [ -f anchor.png ] && ! grep -q '13,13' anchor.log; then
    echo "PASS attention_anchor_default_positions"
else
    echo "FAIL attention_anchor_default_positions: exit $rc; $(tail -n 1 anchor.log)"
fi

# ---- random=1 in a distilled cfg: one line at parse time, not Darknet's resize error ----------
sed 's/^\[net\]$/[net]\nrandom=1/' student.cfg > random.cfg
expect_error exit1 random_with_distill_sections "random.cfg random=1 not supported distillation" -- \
    "$DARKNET" distill classifier train ok.data random.cfg teacher.cfg backup/teacher.weights

# ---- distill segmenter valid -out: never into the data, never over a file it did not write ----
if fashion_seg 8 4; then
    sed -e 's/^batch=.*/batch=4/' -e 's/^max_batches=.*/max_batches=1/' -e 's/^burn_in=.*/burn_in=0/' \
        "$top/cfg/fashion-seg-student.cfg" > seg.cfg
    if "$DARKNET" segmenter train seg.data seg.cfg > seg-train.log 2>&1 && [ -f backup/seg.weights ]; then
        valid() { "$DARKNET" distill segmenter valid seg.data seg.cfg backup/seg.weights -out "$@"; }
        remember seg backup/seg.weights
        expect_error exit1 seg_valid_out_is_the_mask_folder "seg/valid/masks/00000.png folder of the masks refusing" -- valid seg/valid/masks
        expect_error exit1 seg_valid_out_is_the_image_folder "seg/valid/images/00000.png folder of the images refusing" -- valid seg/valid/images/
        expect_error exit1 seg_valid_out_is_the_train_masks "seg/train/masks folder of the masks refusing" -- valid ./seg/train/masks
        mkdir -p mine
        echo "a file of the user's" > mine/00001.png
        remember seg backup/seg.weights mine
        expect_error exit1 seg_valid_out_holds_a_users_file "mine/00001.png already exists did not create refusing" -- valid mine
        kept seg_valid_refusals_leave_the_data_whole
        [ ! -e mine/00000.png ] && echo "PASS seg_valid_refusal_writes_nothing" ||
            echo "FAIL seg_valid_refusal_writes_nothing: $(ls mine)"
        valid pred > seg-valid.log 2>&1 && [ "$(ls pred | wc -l)" -eq 4 ] && echo "PASS seg_valid_out_new_folder" ||
            echo "FAIL seg_valid_out_new_folder: $(tail -n 1 seg-valid.log)"
    else
        echo "FAIL seg_valid_setup: $(tail -n 1 seg-train.log)"
    fi
else
    echo "FAIL seg_valid_generate: $(tail -n 1 gen.log)"
fi
