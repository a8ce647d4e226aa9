#!/bin/bash
# Segmentation through the binary on a tiny generated Fashion-MNIST set (the shipped cfgs at
# batch 8): plain `segmenter train` with PNG masks and with Darknet's RLE masks, a short
# `distill segmenter train` whose distillation loss must fall, `distill segmenter valid`
# (mIoU line, colourised PNGs), and bad input: image without mask, mask of another size,
# class id out of range, corrupt PNG, each one line naming the file and exit 1, with the
# weights already on disk untouched.
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
need_fashion_mnist segmentation
enter_tmp
fashion_seg 96 16 || {
    echo "FAIL seg_generate: $(tail -n 1 gen.log)"
    exit 0
}
mkdir -p backup

# shipped cfgs, batch 8 and a short budget
small() { # small <cfg> <max_batches> > out
    sed -e 's/^batch=.*/batch=8/' -e "s/^max_batches=.*/max_batches=$2/" -e 's/^burn_in=.*/burn_in=0/' "$top/cfg/$1"
}
small fashion-seg-teacher.cfg 40 > teacher.cfg
small fashion-seg-student.cfg 5 > student.cfg
small fashion-seg-student-tat.cfg 40 > student-tat.cfg

"$DARKNET" segmenter train seg.data teacher.cfg -seed 1 > teacher.log 2> teacher.err
rc=$?
losses=$(grep -E '^[0-9]+, ' teacher.log | sed 's/^[0-9]*, [0-9.]*: \([0-9.]*\),.*/\1/')
first=$(echo "$losses" | head -n 5 | mean)
last=$(echo "$losses" | tail -n 5 | mean)
if [ $rc -eq 0 ] && [ -f backup/teacher.weights ] && awk -v a="$first" -v b="$last" 'BEGIN {exit !(b < 0.8 * a)}'; then
    echo "PASS seg_plain_train_png_masks"
else
    echo "FAIL seg_plain_train_png_masks: exit $rc, loss $first -> $last; $(tail -n 1 teacher.err)"
fi
echo "INFO teacher loss (mean of 5) $first -> $last" >&2

# Darknet's own RLE text masks (no masks= in the .data): images/x.jpg -> mask/x.txt
mkdir -p rle/images rle/mask
for i in 0 1; do
    cp seg/train/images/0000$i.png rle/images/$i.jpg  # stb_image reads PNG content by its bytes
    printf '0 0,4096\n' > rle/mask/$i.txt            # class 0 everywhere
    echo "rle/images/$i.jpg"
done > rle.list
printf 'classes=11\ntrain=rle.list\nbackup=backup\n' > rle.data
small fashion-seg-student.cfg 3 > rle-student.cfg
if "$DARKNET" segmenter train rle.data rle-student.cfg > rle.log 2> rle.err && [ -f backup/rle-student.weights ]; then
    echo "PASS seg_plain_train_rle_masks"
else
    echo "FAIL seg_plain_train_rle_masks: $(tail -n 1 rle.err)"
fi

"$DARKNET" distill segmenter train seg.data student-tat.cfg teacher.cfg backup/teacher.weights -seed 3 > distill.log 2> distill.err
rc=$?
distill_losses distill.log > tat_losses
n=$(wc -l < tat_losses)
first=$(head -n 8 tat_losses | mean)
last=$(tail -n 8 tat_losses | mean)
echo "INFO tat_distill loss (mean of 8) over $n iterations: $first -> $last" >&2
if [ $rc -eq 0 ] && [ "$n" -eq 40 ] && awk -v a="$first" -v b="$last" 'BEGIN {exit !(b < 0.7 * a)}'; then
    echo "PASS seg_distill_loss_falls"
else
    echo "FAIL seg_distill_loss_falls: exit $rc, $n progress lines, $first -> $last (want < 0.7x); $(tail -n 1 distill.err)"
fi
grep -q '; anchor_distill\[' distill.log && echo "PASS seg_distill_anchor_term_reported" ||
    echo "FAIL seg_distill_anchor_term_reported: no anchor_distill term in the progress lines"

# -seed repeats a run exactly (loss lines, distillation terms, weights)
small fashion-seg-student-tat.cfg 8 > seeded.cfg
"$DARKNET" distill segmenter train seg.data seeded.cfg teacher.cfg backup/teacher.weights -seed 5 > seed1.log 2>&1
cp backup/seeded.weights seed1.weights 2> /dev/null
"$DARKNET" distill segmenter train seg.data seeded.cfg teacher.cfg backup/teacher.weights -seed 5 > seed2.log 2>&1
if [ -n "$(losses_of seed1.log)" ] && [ "$(losses_of seed1.log)" = "$(losses_of seed2.log)" ] &&
    cmp -s seed1.weights backup/seeded.weights; then
    echo "PASS seg_seed_reproducible"
else
    echo "FAIL seg_seed_reproducible: $(diff <(losses_of seed1.log) <(losses_of seed2.log) | head -n 3 | tr '\n' ' ')"
fi

"$DARKNET" distill segmenter valid seg.data student-tat.cfg backup/student-tat.weights -out pred > valid.log 2> valid.err
rc=$?
if [ $rc -eq 0 ] && grep -qE '^mIoU [0-9.]+ over [0-9]+ classes, pixel accuracy [0-9.]+, 16 images$' valid.log &&
    [ "$(grep -c '^class ' valid.log)" -eq 11 ]; then
    echo "PASS seg_valid_reports"
else
    echo "FAIL seg_valid_reports: exit $rc; $(tail -n 1 valid.log) $(tail -n 1 valid.err)"
fi
[ "$(ls pred/*.png 2> /dev/null | wc -l)" -eq 16 ] && echo "PASS seg_valid_writes_pngs" ||
    echo "FAIL seg_valid_writes_pngs: $(ls pred 2> /dev/null | wc -l) files in pred/"

# --- bad input: one line naming the file, exit 1, the weights on disk untouched
png() { # png <path> <w> <h> <value>: an 8-bit gray PNG of one value
    /usr/bin/python3 - "$@" << 'EOF'
import struct, sys, zlib
path, w, h, v = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
raw = b''.join(b'\0' + bytes([v]) * w for _ in range(h))
open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0))
                       + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
EOF
}
cp backup/student-tat.weights keep.weights
bad_case() { # bad_case <name> <file the message must name>: image 0 with a broken mask
    local name=$1 file=$2 out
    for verb in train valid; do
        printf 'classes=11\ntrain=bad/images/x.png\nvalid=bad.list\nbackup=backup\nmasks=/images/,/masks/\n' > bad.data
        echo bad/images/x.png > bad.list
        sed -i 's|^train=.*|train=bad.list|' bad.data
        if [ $verb = train ]; then
            "$DARKNET" distill segmenter train bad.data student-tat.cfg teacher.cfg backup/teacher.weights > bad.log 2> bad.err
        else
            "$DARKNET" distill segmenter valid bad.data student-tat.cfg backup/student-tat.weights > bad.log 2> bad.err
        fi
        rc=$?
        out=$(tail -n 1 bad.err)
        if [ $rc -eq 1 ] && [[ $out == *"$file"* ]] && ! grep -qi 'segmentation fault\|core dumped\|sanitizer' bad.err &&
            cmp -s keep.weights backup/student-tat.weights; then
            echo "PASS seg_bad_${name}_$verb"
        else
            echo "FAIL seg_bad_${name}_$verb: exit $rc, last line '$out' (want exit 1 naming $file)"
        fi
    done
}
mkdir -p bad/images bad/masks
cp seg/train/images/00000.png bad/images/x.png
rm -f bad/masks/x.png
bad_case missing_mask bad/masks/x.png
png bad/masks/x.png 32 32 0
bad_case mask_size bad/masks/x.png
png bad/masks/x.png 64 64 12
bad_case class_out_of_range bad/masks/x.png
png bad/masks/x.png 64 64 255
"$DARKNET" distill segmenter valid bad.data student-tat.cfg backup/student-tat.weights > ign.log 2> ign.err &&
    grep -q '^mIoU 0.0000 over 0 classes' ign.log && echo "PASS seg_all_ignore_mask_accepted" ||
    echo "FAIL seg_all_ignore_mask_accepted: $(tail -n 1 ign.log) $(tail -n 1 ign.err)"
cp seg/train/masks/00000.png full.png
head -c 60 full.png > bad/masks/x.png
bad_case corrupt_png bad/masks/x.png

# --- the paper's four settings (cfg/seg-distill-sections.cfg) parse and run one step on a
# 129x129x256 teacher feature (the stride-4 map of a 513 crop), one image
net129() { printf '[net]\nbatch=1\nsubdivisions=1\nwidth=129\nheight=129\nchannels=3\nmin_crop=129\nmax_crop=129\nlearning_rate=0.0001\npolicy=constant\nmax_batches=1\n\n'; }
c1() { printf '[convolutional]\nbatch_normalize=%d\nfilters=%d\nsize=1\nstride=1\npad=0\nactivation=%s\n\n' "$@"; }
tail_out() { c1 0 11 linear; printf '[softmax]\ngroups=1\nspatial=1\n'; }
{ net129; c1 1 256 leaky; tail_out; } > t129.cfg
"$DARKNET" segmenter train seg.data t129.cfg > t129.log 2>&1
awk '/^# ---- /{n++} n {print > ("block" n ".txt")}' "$top/cfg/seg-distill-sections.cfg"
for k in 1 2 3 4; do
    name=$(head -n 1 block$k.txt | sed 's/^# ---- //; s/:.*//; s/[^A-Za-z0-9]\+/_/g; s/_$//')
    { net129; c1 1 16 leaky; grep -v '^#' block$k.txt; printf '\n'; tail_out; } > s129-$k.cfg
    "$DARKNET" distill segmenter train seg.data s129-$k.cfg t129.cfg backup/t129.weights > s129.log 2> s129.err
    rc=$?
    if [ $rc -eq 0 ] && grep -q '^distill: tat_distill.*anchor_distill' s129.log; then
        echo "PASS seg_paper_setting_$name"
    else
        echo "FAIL seg_paper_setting_$name: exit $rc; $(tail -n 1 s129.err)"
    fi
done
