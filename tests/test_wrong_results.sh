#!/bin/bash
# Results that were silently wrong, through the real binary:
#   - a saturated softmax (a labelled class at probability 0 in float) reports a finite loss in
#     plain `segmenter train` (it printed `inf avg` and exited 0);
#   - non-finite outputs (NaN weights) stop plain `segmenter train` and `classifier train` with
#     the one line the distill commands print, exit 1 (they trained on, exit 0);
#   - a distillation section whose `from` is directly followed by a [dropout] is refused (the
#     dropout works in place: the section read the dropped-out map and lost its gradient).
# Needs DARKNET, build/tools/fashion_seg_to_darknet and the Fashion-MNIST package.
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
need_fashion_mnist wrong_results
enter_tmp
fashion_seg 8 4 || {
    echo "FAIL wrong_results_generate: $(tail -n 1 gen.log)"
    exit 0
}
mkdir -p backup

# weights <file> <class 0 bias> <float count after it>: header (major 0, minor 2, revision 0,
# seen 0), then the first bias and zeros
weights() {
    python3 -c "import struct,sys; open(sys.argv[1],'wb').write(struct.pack('<iiiQf',0,2,0,0,float(sys.argv[2]))+bytes(4*int(sys.argv[3])))" "$1" "$2" "$3"
}

# one 1x1 convolution at stride 2 (64x64 canvases -> 32x32 x 11 classes) and the per-pixel
# softmax; learning rate 0, so the weights stay as written
cat > seg.cfg <<'CFG'
[net]
batch=2
subdivisions=1
width=64
height=64
channels=3
min_crop=64
max_crop=64
learning_rate=0
momentum=0
decay=0
policy=constant
max_batches=3

[convolutional]
filters=11
size=1
stride=2
pad=0
activation=linear

[softmax]
groups=1
spatial=1
CFG
# class 0's bias 200, every other logit 0: p = exp(-200) = 0 in float for the garments' pixels
weights saturated.weights 200 $((10 + 33))
"$DARKNET" segmenter train seg.data seg.cfg saturated.weights -seed 1 > sat.log 2> sat.err
rc=$?
losses=$(grep -E '^[0-9]+, ' sat.log | cut -d: -f2)
if [ "$rc" -eq 0 ] && [ "$(echo "$losses" | grep -c .)" -eq 3 ] && ! echo "$losses" | grep -qi 'inf\|nan'; then
    echo "PASS saturated_softmax_loss_finite"
else
    echo "FAIL saturated_softmax_loss_finite: exit $rc, losses: $(echo "$losses" | tr '\n' ' ')"
fi

weights nan.weights nan $((10 + 33))
expect_error exit1 nan_outputs_stop_plain_segmenter "seg.cfg [softmax] (layer 1) loss is nan at iteration 1 stopping" -- \
    "$DARKNET" segmenter train seg.data seg.cfg nan.weights -seed 1

# the classifier loop: four canvases as images of 2 classes named in their paths, as a
# classification set is laid out (no "images" directory)
mkdir -p flat
for i in 0 1 2 3; do
    cp "seg/train/images/0000$i.png" "flat/${i}_$( [ $((i % 2)) = 0 ] && echo cat || echo dog).png"
done
ls flat/*.png > cls.list
printf 'cat\ndog\n' > labels.txt
printf 'classes=2\ntrain=cls.list\nlabels=labels.txt\nbackup=backup\n' > cls.data
sed -e 's/^filters=11/filters=2/' -e 's/^spatial=1//' seg.cfg > cls.cfg
printf '[avgpool]\n' >> cls.cfg
# [softmax] last: move it after the [avgpool]
sed -i -e '/^\[softmax\]/,/^groups=1/d' cls.cfg && printf '\n[softmax]\n' >> cls.cfg
weights nan-cls.weights nan $((1 + 6))
expect_error exit1 nan_outputs_stop_plain_classifier "cls.cfg [softmax] (layer 2) loss is nan at iteration 1 stopping" -- \
    "$DARKNET" classifier train cls.data cls.cfg nan-cls.weights -seed 1

# [dropout] right after the distilled layer
cat > teacher.cfg <<'CFG'
[net]
batch=2
width=64
height=64
channels=3

[convolutional]
filters=4
size=3
stride=2
pad=1
activation=leaky
CFG
weights teacher.weights 0 $((3 + 108))
{ sed -n '1,/^activation=linear/p' cls.cfg | sed 's/^stride=2/stride=2/'
  printf '\n[dropout]\nprobability=.5\n\n[tat_distill]\nfrom=-2\nteacher_layer=0\nteacher_channels=4\n\n[avgpool]\n\n[softmax]\n'; } > dropout.cfg
expect_error exit1 dropout_after_distilled_layer_refused "dropout.cfg [tat_distill] (layer 2) from: layer 0 is followed by [dropout] (layer 1)" -- \
    "$DARKNET" distill classifier train cls.data dropout.cfg teacher.cfg teacher.weights

# teacher weights holding a NaN: refused at load, naming the teacher's file
weights nan-teacher.weights 0 $((3 + 108))
python3 -c "import struct,sys; f=open(sys.argv[1],'r+b'); f.seek(20+4*50); f.write(struct.pack('<f',float('nan')))" nan-teacher.weights
sed -e '/^\[dropout\]/,/^probability/d' -e 's/^from=-2/from=-1/' dropout.cfg > student.cfg
expect_error exit1 nan_teacher_weights_refused "nan-teacher.weights: the teacher weights hold NaN (the float at byte 220)" -- \
    "$DARKNET" distill classifier train cls.data student.cfg teacher.cfg nan-teacher.weights

# -gpus in a CPU build ran one CPU replica per id with the learning rate multiplied
if "$DARKNET" distill classifier train cls.data student.cfg teacher.cfg teacher.weights -gpus 0 < /dev/null 2>&1 | grep -q 'GPU build'; then
    echo "SKIP gpus_refused_in_cpu_build: a GPU build"
else
    expect_error exit1 gpus_refused_in_cpu_build "-gpus 0,1 CPU build" -- \
        "$DARKNET" distill classifier train cls.data student.cfg teacher.cfg teacher.weights -gpus 0,1
    # the plain loops too (the -gpus patch)
    expect_error exit1 gpus_refused_plain_classifier "classifier: -gpus 0,1 CPU build" -- \
        "$DARKNET" classifier train cls.data cls.cfg -gpus 0,1
    expect_error exit1 gpus_refused_plain_segmenter "segmenter: -gpus 0,1 CPU build" -- \
        "$DARKNET" segmenter train seg.data seg.cfg -gpus 0,1
fi

# labels: Darknet takes the class from the label found in the image's path
mkdir -p other && cp seg/train/images/00000.png other/x.png
{ head -n 2 cls.list; echo other/x.png; } > nolabel.list
sed 's|^train=.*|train=nolabel.list|' cls.data > nolabel.data
expect_error exit1 image_without_label_refused "other/x.png no label line 3 of nolabel.list" -- \
    "$DARKNET" classifier train nolabel.data cls.cfg -seed 1
printf 'flat\ncat\n' > two-labels.txt
sed 's|^labels=.*|labels=two-labels.txt|' cls.data > two-labels.data
expect_error exit1 image_with_two_labels_refused "flat/0_cat.png 2 labels occur line 1 of cls.list 'flat' 'cat'" -- \
    "$DARKNET" classifier train two-labels.data cls.cfg -seed 1

# the segmenter loop given classification data and a classifier cfg (its 2 classes match): the
# image itself was read as its RLE mask, a task loss of 0
expect_error exit1 segmenter_with_classifier_cfg_refused "cls.cfg 1 x 1 map segmenter" -- \
    "$DARKNET" segmenter train cls.data cls.cfg -seed 1
