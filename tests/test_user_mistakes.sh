#!/bin/bash
# A new user's plausible mistakes through the real binary, on a few Fashion-MNIST images: each
# must end in one line naming the file and the field, a plain non-zero exit (not a signal), and
# no file already on disk changed. Covers: outputs that are inputs (export, a backup directory
# holding the teacher), unwritable or over-long backup and -out directories, bad [net]
# numbers, labels against classes and outputs, file fields that cannot be opened, paths that
# are directories or devices, options without values, `distill check` on good and bad data.
# Needs DARKNET, build/tools/fashion_mnist_to_darknet (+ fashion_seg_to_darknet) and the data.
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
fashion_subset user_mistakes 16

# unchanged <name> <files...>: compared with the sums taken by `remember`
remember() { sha256sum "$@" > sums.txt; }
unchanged() {
    local name=$1
    if sha256sum --quiet -c sums.txt > /dev/null 2>&1; then echo "PASS $name"
    else echo "FAIL $name: $(sha256sum -c sums.txt 2>&1 | grep -v ': OK' | tr '\n' ' ')"; fi
}

cfg() { # cfg <batch> <subdivisions> [distill]: 28x28x3, conv 8, pool, [tat_distill], 10 classes
    net_head batch="$1" subdivisions="$2" learning_rate=0.01 policy= max_batches=2
    printf '[convolutional]\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n'  # no batch_normalize
    pool
    [ -z "${3:-}" ] || printf '[tat_distill]\nteacher_layer=1\nteacher_channels=8\n\n'
    head_out
}
cfg 8 1 > teacher.cfg
cfg 8 1 distill > student.cfg
data_file > ok.data
"$DARKNET" classifier train ok.data teacher.cfg -seed 1 > setup.log 2>&1 &&
    "$DARKNET" distill classifier train ok.data student.cfg teacher.cfg backup/teacher.weights -seed 1 >> setup.log 2>&1 ||
    { echo "FAIL user_mistakes_setup: $(tail -n 1 setup.log)"; exit 0; }
train() { "$DARKNET" distill classifier train "$1" "$2" teacher.cfg backup/teacher.weights "${@:3}"; }

# ---- 1. files destroyed ---------------------------------------------------------------------
cp student.cfg s.cfg
cp backup/student.weights s.weights
ln -s s.weights link.weights
remember s.cfg s.weights
expect_error nonzero-lastline export_outputs_are_inputs "s.cfg output cfg same file student cfg" -- \
    "$DARKNET" distill export s.cfg s.weights s.cfg s.weights
expect_error nonzero-lastline export_same_output_twice "o output weights same file output cfg" -- \
    "$DARKNET" distill export s.cfg s.weights o o
expect_error nonzero-lastline export_dot_slash_input "./s.weights output weights same file student weights" -- \
    "$DARKNET" distill export s.cfg s.weights out.cfg ./s.weights
expect_error nonzero-lastline export_symlink_to_input "link.weights same file student weights" -- \
    "$DARKNET" distill export s.cfg s.weights out.cfg link.weights
expect_error nonzero-lastline export_missing_directory "nodir/out.weights output weights cannot create nodir No such file" -- \
    "$DARKNET" distill export s.cfg s.weights out.cfg nodir/out.weights
unchanged export_refusals_leave_inputs
[ ! -e o ] && [ ! -e out.cfg ] && echo "PASS export_refusals_write_nothing" ||
    echo "FAIL export_refusals_write_nothing: $(ls o out.cfg 2> /dev/null)"

mkdir -p my/s my/b
cp student.cfg my/s/net.cfg
cp teacher.cfg my/b/net.cfg
cp backup/teacher.weights my/b/net.weights
data_file backup=my/b/ > mb.data
remember my/b/net.weights
expect_error nonzero-lastline backup_dir_holds_the_teacher "my/b/net.weights teacher weights overwritten backup= mb.data" -- \
    "$DARKNET" distill classifier train mb.data my/s/net.cfg my/b/net.cfg my/b/net.weights
unchanged backup_dir_holds_the_teacher_kept
data_file backup=nope/ > nb.data
expect_error nonzero-lastline backup_dir_missing "nb.data backup nope/ No such file" -- train nb.data student.cfg
expect_error nonzero-lastline backup_dir_missing_plain "nb.data backup nope/ No such file" -- \
    "$DARKNET" classifier train nb.data teacher.cfg
touch plainfile
data_file backup=plainfile/sub > fb.data
expect_error nonzero-lastline backup_dir_is_a_file "fb.data backup plainfile/sub Not a directory" -- train fb.data student.cfg
printf 'classes=10\ntrain=data/train.list\nlabels=data/labels.txt\n' > nob.data
expect_error nonzero-lastline backup_field_missing "nob.data backup default /backup/" -- train nob.data student.cfg

# ---- 2. crashes -----------------------------------------------------------------------------
long=backup/$(printf 'd%.0s' $(seq 1 60))
long=$long/${long#backup/}/${long#backup/}/${long#backup/}/${long#backup/}
mkdir -p "$long"
data_file backup="$long" > long.data
expect_error nonzero-lastline backup_dir_too_long "long.data backup= too long 255" -- train long.data student.cfg
expect_error nonzero-lastline backup_dir_too_long_plain "long.data backup= too long 255" -- \
    "$DARKNET" classifier train long.data teacher.cfg
for case in "0 1 batch" "-4 1 batch" "8 16 subdivisions" "8 3 subdivisions" "8 0 subdivisions"; do
    set -- $case
    cfg "$1" "$2" distill > "net_$1_$2.cfg"
    expect_error nonzero-lastline "net_batch_$1_subdivisions_$2" "net_$1_$2.cfg [net] $3 batch=$1, subdivisions=$2" -- \
        train ok.data "net_$1_$2.cfg"
done
printf 'a\nb\nc\n' > three.txt
printf 'classes=5\ntrain=data/train.list\nlabels=three.txt\nbackup=backup\n' > l5.data
expect_error nonzero-lastline labels_fewer_than_classes "three.txt 3 labels classes=5 l5.data" -- train l5.data student.cfg
seq 1 12 | sed 's/^/label/' > twelve.txt
printf 'classes=12\ntrain=data/train.list\nlabels=twelve.txt\nbackup=backup\n' > c12.data
expect_error nonzero-lastline classes_more_than_outputs "c12.data classes=12 student.cfg outputs 10" -- train c12.data student.cfg
data_file tree=data/9k.tree > tree.data
expect_error nonzero-lastline data_tree_missing "data/9k.tree tree= tree.data No such file" -- train tree.data student.cfg
printf 'classes=10\nvalid=data/train.list\nlabels=data/lables.txt\n' > typo.data
expect_error nonzero-lastline data_labels_missing_valid "data/lables.txt labels= typo.data No such file" -- \
    "$DARKNET" distill classifier valid typo.data student.cfg backup/student.weights
sed 's|^\[softmax\]|[softmax]\ntree=data/9k.tree|' teacher.cfg > treecfg.cfg
expect_error nonzero-lastline cfg_tree_missing "treecfg.cfg [softmax] tree data/9k.tree No such file" -- \
    "$DARKNET" classifier valid ok.data treecfg.cfg

# ---- 7. distill check -------------------------------------------------------------------------
if "$DARKNET" distill check ok.data student.cfg > check.log 2> check.err &&
    grep -q '^ok.data: 16 train and 0 valid entries checked .*: 0 problems$' check.log; then
    echo "PASS check_good_data"
else
    echo "FAIL check_good_data: $(tail -n 1 check.err) $(tail -n 1 check.log)"
fi
cp data/train.list bad.list
echo data/train/missing_c1_trouser.png >> bad.list
head -c 100 data/train/00000_c9_ankle_boot.png > data/train/cut_c9_ankle_boot.png
echo data/train/cut_c9_ankle_boot.png >> bad.list
cp data/train/00000_c9_ankle_boot.png data/train/unlabelled.png
echo data/train/unlabelled.png >> bad.list
printf 'classes=10\ntrain=bad.list\nvalid=data/train.list\nlabels=data/labels.txt\nbackup=backup\n' > bad.data
"$DARKNET" distill check bad.data > check.log 2> check.err
rc=$?
if [ "$rc" -eq 1 ] && grep -q 'missing_c1_trouser.png: cannot load image' check.err &&
    grep -q 'cut_c9_ankle_boot.png: cannot load image' check.err &&
    grep -q 'unlabelled.png: 0 labels found' check.err &&
    grep -q '^bad.data: 19 train and 16 valid entries checked .*: 3 problems$' check.log; then
    echo "PASS check_bad_entries"
else
    echo "FAIL check_bad_entries: exit $rc; $(grep -v '^check:' check.err | tr '\n' ' ') $(cat check.log)"
fi
# expect_check <name> <pattern of a problem line> <args...>: exit 1 and that line on stderr
expect_check() {
    local name=$1 pattern=$2 rc
    shift 2
    "$DARKNET" distill check "$@" > check.log 2> check.err < /dev/null
    rc=$?
    if [ "$rc" -eq 1 ] && grep -qE -- "$pattern" check.err; then echo "PASS $name"
    else echo "FAIL $name: exit $rc; $(grep -v '^check:' check.err | tail -n 2 | tr '\n' ' ')"; fi
}
expect_check check_classes_against_cfg '^c12.data: classes=12, but student.cfg outputs 10 ' c12.data student.cfg

# ---- 8. messages that mislead -------------------------------------------------------------
mkdir -p adir
expect_error nonzero-lastline teacher_weights_is_a_directory "adir teacher weights directory" -- \
    "$DARKNET" distill classifier train ok.data student.cfg teacher.cfg adir
expect_error nonzero-lastline teacher_weights_is_dev_zero "/dev/zero teacher weights device" -- \
    "$DARKNET" distill classifier train ok.data student.cfg teacher.cfg /dev/zero
expect_error nonzero-lastline weights_is_a_directory "adir directory not a weights file" -- \
    "$DARKNET" distill classifier valid ok.data student.cfg adir
expect_error nonzero-lastline weights_is_dev_zero "/dev/zero device not a weights file" -- \
    "$DARKNET" distill classifier valid ok.data student.cfg /dev/zero
sed 's/^teacher_channels=8/teacher_channels=2000000000/' student.cfg > huge.cfg
expect_error nonzero-lastline teacher_channels_out_of_range "huge.cfg [tat_distill] teacher_channels 2000000000 out of range" -- \
    train ok.data huge.cfg
expect_error nonzero-lastline student_cfg_is_a_directory "adir student cfg directory" -- train ok.data adir
expect_error nonzero-lastline data_is_a_directory "adir data file directory" -- train adir student.cfg
head -c 200 backup/teacher.weights > binary.data
expect_error nonzero-lastline data_is_binary "binary.data binary" -- train binary.data student.cfg
expect_error nonzero-lastline data_is_binary_valid "binary.data binary" -- \
    "$DARKNET" distill classifier valid binary.data student.cfg backup/student.weights
expect_error nonzero-lastline seed_without_value "-seed needs a value" -- train ok.data student.cfg -seed
expect_error nonzero-lastline classifier_without_verb "usage" -- "$DARKNET" distill classifier
expect_error nonzero-lastline classifier_unknown_verb "usage" -- "$DARKNET" distill classifier frobnicate ok.data student.cfg
expect_error nonzero-lastline segmenter_without_verb "usage segmenter" -- "$DARKNET" distill segmenter
# the parse error completes its layer's row: no bare index left on a line of its own
sed 's/^teacher_channels=8/teacher_channels=7/' student.cfg > seven.cfg
expect_error nonzero-lastline parse_error_names_field "seven.cfg [tat_distill] teacher_channels 7 8 channels" -- train ok.data seven.cfg
if grep -qE '^ *[0-9]+ *$' err.log; then
    echo "FAIL parse_error_no_stray_fragment: $(grep -nE '^ *[0-9]+ *$' err.log | head -n 1)"
else
    echo "PASS parse_error_no_stray_fragment"
fi

# ---- segmentation: -out of a few hundred characters, a missing mask, -out without a value ----
if fashion_seg 8 4; then
    sed -e 's/^batch=.*/batch=4/' -e 's/^max_batches=.*/max_batches=1/' -e 's/^burn_in=.*/burn_in=0/' \
        "$top/cfg/fashion-seg-student.cfg" > segs.cfg
    "$DARKNET" segmenter train seg.data segs.cfg -seed 1 > segtrain.log 2>&1
    out=out/$(printf 'o%.0s' $(seq 1 250))/$(printf 'p%.0s' $(seq 1 120))
    mkdir -p "$out"
    "$DARKNET" distill segmenter valid seg.data segs.cfg backup/segs.weights -out "$out" > segvalid.log 2> segvalid.err
    rc=$?
    if [ "$rc" -eq 0 ] && [ "$(ls "$out" | wc -l)" -eq 4 ]; then echo "PASS seg_valid_long_out_dir"
    else echo "FAIL seg_valid_long_out_dir: exit $rc, $(ls "$out" | wc -l) PNGs; $(tail -n 1 segvalid.err)"; fi
    expect_error nonzero-lastline seg_valid_out_without_value "-out needs a value" -- \
        "$DARKNET" distill segmenter valid seg.data segs.cfg backup/segs.weights -out
    rm seg/train/masks/00002.png
    expect_check check_missing_mask '^seg/train/masks/00002.png: mask of seg/train/images/00002.png: cannot open' \
        seg.data segs.cfg
    sed 's|^names=.*|names=seg/nmaes.txt|' seg.data > segnames.data
    expect_error nonzero-lastline seg_valid_names_missing "seg/nmaes.txt names= segnames.data No such file" -- \
        "$DARKNET" distill segmenter valid segnames.data segs.cfg backup/segs.weights
    sed 's|^backup=.*|backup=nope|' seg.data > segnb.data
    expect_error nonzero-lastline seg_backup_dir_missing "segnb.data backup nope No such file" -- \
        "$DARKNET" distill segmenter train segnb.data segs.cfg teacher.cfg backup/teacher.weights
else
    echo "FAIL seg_generate: $(tail -n 1 gen.log)"
fi
