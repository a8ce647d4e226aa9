#!/bin/bash
# No command or tool writes onto what it reads, and what it says about files is true: through
# the binary and the tools on a few Fashion-MNIST images. `distill segmenter valid -out` into
# the mask or image folder, `distill attention` onto an input, the converters onto their inputs
# (the Fashion-MNIST ones into their dataset dir);
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

# ---- the Fashion-MNIST converters: never into the dataset dir they read ----------------------
mkdir -p dataset
cp "$fashion_mnist"/*-ubyte* dataset/
ln -sfn dataset dataset-link
ls -A dataset > dataset-before.txt
for conv in fashion_mnist_to_darknet fashion_seg_to_darknet fashion_detect_to_darknet; do
    for spelled in dataset dataset/ ./dataset dataset-link; do
        expect_error exit1 "${conv}_out_is_the_dataset_dir_as_$(echo "$spelled" | tr -c 'a-z\n' _)" \
            "${spelled%/} out dir is the dataset dir" dataset/train-images-idx3-ubyte.gz -- \
            "$top/build/tools/$conv" dataset "$spelled"
    done
done
ls -A dataset | cmp -s - dataset-before.txt && echo "PASS converters_refusals_add_nothing_to_the_dataset" ||
    echo "FAIL converters_refusals_add_nothing_to_the_dataset: $(ls -A dataset | tr '\n' ' ')"

# ---- tools/torchvision_to_darknet.py: outputs that are inputs, NaN tensors -------------------
# Debian's torch (python3-torch) writes the state dicts the converter reads.
py=/usr/bin/python3
printf '[net]\nwidth=4\nheight=4\nchannels=3\n\n[convolutional]\nfilters=2\nsize=1\nstride=1\nactivation=linear\n\n[softmax]\n' > fc.cfg
"$py" -c '
import torch
w = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
torch.save({"fc.weight": w, "fc.bias": torch.tensor([0.0, 1.0])}, "ok.pth")
w[0, 2] = float("nan")
torch.save({"fc.weight": w, "fc.bias": torch.tensor([0.0, 1.0])}, "nan.pth")
' > torch-save.log 2>&1 || echo "FAIL torchvision_state_dicts: $(tail -n 1 torch-save.log)"
convert() { "$py" "$tools/torchvision_to_darknet.py" "$@"; }
if convert ok.pth fc.cfg fc.weights > convert.log 2>&1 && [ "$(stat -c %s fc.weights)" -eq $((20 + 8 * 4)) ]; then
    echo "PASS torchvision_convert_small"
else
    echo "FAIL torchvision_convert_small: $(tail -n 1 convert.log)"
fi
remember ok.pth fc.cfg nan.pth
expect_error exit1 torchvision_out_is_the_state_dict "ok.pth output weights same file state dict refusing" -- convert ok.pth fc.cfg ok.pth
expect_error exit1 torchvision_out_is_the_cfg "fc.cfg output weights same file the cfg refusing" -- convert ok.pth fc.cfg ./fc.cfg
expect_error exit1 torchvision_nan_tensor "nan.pth fc.weight NaN or Inf refusing" -- convert nan.pth fc.cfg nan.weights
kept torchvision_refusals_leave_inputs
[ ! -e nan.weights ] && ! ls ./*.tmp > /dev/null 2>&1 && echo "PASS torchvision_refusals_write_nothing" ||
    echo "FAIL torchvision_refusals_write_nothing: $(ls nan.weights ./*.tmp 2> /dev/null)"

# ---- tools/imagefolder_to_darknet.py: symbolic link loops, an output in a missing folder --------
mkdir -p tree/train/shirt tree/train/boot tree/valid/shirt
cp "$img" tree/train/shirt/a.png
cp "$img" tree/train/shirt/b.png
cp "$img" tree/train/boot/c.png
cp "$img" tree/valid/shirt/d.png
ln -s .. tree/train/shirt/loop
folder() { python3 "$tools/imagefolder_to_darknet.py" "$@"; }
expect_error exit1 imagefolder_symlink_loop "tree/train/shirt/loop symbolic link loop" -- folder tree/train tree/valid lists
[ ! -e lists ] && echo "PASS imagefolder_symlink_loop_writes_nothing" || echo "FAIL imagefolder_symlink_loop_writes_nothing: $(ls lists)"
rm tree/train/shirt/loop
expect_error exit1 imagefolder_name_in_a_missing_folder "lists/a/b.data cannot write No such file" -- folder tree/train tree/valid lists a/b
left=$(ls -A lists 2> /dev/null)
[ -z "$left" ] && echo "PASS imagefolder_failed_write_leaves_nothing" || echo "FAIL imagefolder_failed_write_leaves_nothing: $left"
if folder tree/train tree/valid lists > folder.log 2>&1 && [ "$(wc -l < lists/train.list)" -eq 3 ]; then
    echo "PASS imagefolder_writes_the_lists"
else
    echo "FAIL imagefolder_writes_the_lists: $(tail -n 1 folder.log)"
fi

# ---- saves: a file-size limit, a user's own <file>.tmp, a backup replaced by another run ------
# ulimit -f 1 (1 KiB) is below the teacher's weights (about 1.3 KiB): a plain "cannot write
# weights" line and exit 1, not SIGXFSZ (exit 153), and no temporary file left
mkdir -p small
data_file backup=small > small.data
(ulimit -f 1; exec "$DARKNET" classifier train small.data teacher.cfg 2>&1) | cat > fsize.log
rc=${PIPESTATUS[0]}
if [ "$rc" -eq 1 ] && grep -q 'cannot write weights: File too large' fsize.log && [ -z "$(ls -A small)" ]; then
    echo "PASS save_beyond_the_file_size_limit"
else
    echo "FAIL save_beyond_the_file_size_limit: exit $rc, left: $(ls -A small | tr '\n' ' '); $(grep -v '^[0-9]*, \|^Loaded' fsize.log | tail -n 1)"
fi

mkdir -p own
data_file backup=own > own.data
echo "a note of the user's" > own/teacher.weights.tmp
remember own
"$DARKNET" classifier train own.data teacher.cfg > own.log 2>&1
if [ -f own/teacher.weights ] && sha256sum --quiet -c sums.txt > /dev/null 2>&1 && ! ls own/*-*.tmp > /dev/null 2>&1; then
    echo "PASS save_leaves_a_users_tmp_file"
else
    echo "FAIL save_leaves_a_users_tmp_file: own/ holds $(ls own | tr '\n' ' '); $(tail -n 1 own.log)"
fi

# another run replaces long.backup between two saves of this one: the next save (the periodic
# one or SIGINT's) says so and stops instead of overwriting it, or calling it NaN
sed 's/^max_batches=.*/max_batches=1000000/' teacher.cfg > long.cfg
mkdir -p race
for _ in $(seq 100); do cat data/train.list; done > race.list  # an epoch of 200 iterations
data_file backup=race train=race.list > race.data
"$DARKNET" classifier train race.data long.cfg > race.log 2>&1 &
pid=$!
for _ in $(seq 1 600); do [ -f race/long.backup ] && break; sleep 0.05; done
cp backup/teacher.weights race/other && mv race/other race/long.backup
kill -INT "$pid" 2> /dev/null
wait "$pid"
rc=$?
if [ "$rc" -eq 1 ] && grep -q 'race/long.backup: replaced by another process' race.log && ! grep -q 'NaN' race.log &&
    cmp -s race/long.backup backup/teacher.weights; then
    echo "PASS save_onto_a_file_another_run_replaced"
else
    echo "FAIL save_onto_a_file_another_run_replaced: exit $rc; $(grep -v '^[0-9]*, \|^Loaded\|^Saving' race.log | tail -n 1)"
fi

# ---- CRLF line ends (a file saved on Windows): read as LF, no \r in any message ---------------
sed 's/$/\r/' data/train.list > crlf.list
sed 's/$/\r/' data/labels.txt > crlf-labels.txt
mkdir -p crlf
data_file train=crlf.list labels=crlf-labels.txt backup=crlf | sed 's/$/\r/' > crlf.data
"$DARKNET" classifier train crlf.data teacher.cfg > crlf.log 2>&1
rc=$?
if [ "$rc" -eq 0 ] && [ -f crlf/teacher.weights ] && ! grep -q $'\r' crlf.log; then
    echo "PASS crlf_data_and_lists_train"
else
    echo "FAIL crlf_data_and_lists_train: exit $rc; $(grep -v '^Loaded\|^[0-9]*, ' crlf.log | tail -n 1 | tr '\r' '^')"
fi
"$DARKNET" distill check crlf.data teacher.cfg > crlf-check.log 2>&1
rc=$?
[ "$rc" -eq 0 ] && ! grep -q $'\r' crlf-check.log && echo "PASS crlf_distill_check" ||
    echo "FAIL crlf_distill_check: exit $rc; $(tail -n 1 crlf-check.log | tr '\r' '^')"

# ---- blank lines in a list: the list and the line named ----------------------------------------
{ head -n 2 data/train.list; echo; tail -n +3 data/train.list; } > blank.list
data_file train=blank.list > blank.data
expect_error exit1 blank_line_in_the_train_list "blank.list:3: empty line" -- \
    "$DARKNET" classifier train blank.data teacher.cfg
expect_error exit1 blank_line_in_distill_check "blank.list:3: empty line" -- \
    "$DARKNET" distill check blank.data
# 25 blank lines: 20 problems shown, and the last line says that the rest were counted
{ cat data/train.list; for _ in $(seq 25); do echo; done; } > blanks.list
data_file train=blanks.list > blanks.data
"$DARKNET" distill check blanks.data > blanks.log 2> blanks.err
rc=$?
if [ "$rc" -eq 1 ] && [ "$(grep -c 'empty line' blanks.err)" -eq 20 ] && grep -q 'and 5 more (only the first 20 problems are shown' blanks.err &&
    grep -q '25 problems' blanks.log; then
    echo "PASS distill_check_says_it_shows_20_problems"
else
    echo "FAIL distill_check_says_it_shows_20_problems: exit $rc; $(tail -n 1 blanks.err)"
fi
if [ -f seg.data ]; then
    { head -n 1 seg/valid.list; echo; tail -n +2 seg/valid.list; } > seg-blank.list
    sed 's|^valid=.*|valid=seg-blank.list|' seg.data > seg-blank.data
    expect_error exit1 blank_line_in_the_seg_valid_list "seg-blank.list:2: empty line" -- \
        "$DARKNET" distill segmenter valid seg-blank.data seg.cfg backup/seg.weights
fi
