#!/bin/bash
# Segmentation end to end: dependencies, build, a Fashion-MNIST segmentation set (64x64
# canvases of three garments, 11 classes, 255 = ignore), a teacher encoder-decoder (trained
# once, reused while its cfg and the data are unchanged), the student distilled with TaT
# (patch groups + anchors on the stride-4 decoder feature), the same student trained alone
# with the same budget and seed, and the mIoU of all three on the 1000 valid canvases.
# Logs go to backup/fashion-seg/*.log.
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${SEED:-1}
dataset=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
data=data/fashion-seg/fashion-seg.data
out=backup/fashion-seg
dn=darknet/darknet

# step and train: see scripts/demo-common.sh
. scripts/demo-common.sh
miou() { # miou <cfg> <weights>: the summary line of `distill segmenter valid`
    "$dn" distill segmenter valid "$data" "$1" "$2" 2> /dev/null | tail -n 1
}

step "dependencies (Debian packages)"
scripts/install-deps.sh
step "build"
make --no-print-directory
step "data: Fashion-MNIST -> data/fashion-seg (segmentation canvases)"
build/tools/fashion_seg_to_darknet "$dataset" data/fashion-seg
mkdir -p "$out"

step "teacher: cfg/fashion-seg-teacher.cfg"
teacher_id=$(cat cfg/fashion-seg-teacher.cfg data/fashion-seg/.complete | sha256sum | cut -c1-16)
if [ -f "$out/fashion-seg-teacher.weights" ] && [ "$(cat "$out/fashion-seg-teacher.id" 2> /dev/null)" = "$teacher_id" ]; then
    echo "reusing $out/fashion-seg-teacher.weights (trained from this cfg and data; delete it to retrain)"
else
    train teacher "$out/teacher.log" segmenter train "$data" cfg/fashion-seg-teacher.cfg
    echo "$teacher_id" > "$out/fashion-seg-teacher.id"
fi

step "student distilled with TaT: cfg/fashion-seg-student-tat.cfg"
train "student + TaT" "$out/student-tat.log" distill segmenter train "$data" \
    cfg/fashion-seg-student-tat.cfg cfg/fashion-seg-teacher.cfg "$out/fashion-seg-teacher.weights"
echo "distillation terms, first and last step:"
grep '^distill: .*avg' "$out/student-tat.log" | sed -n '1p;$p' | sed 's/^/  /'

step "the same student alone, same budget and seed: cfg/fashion-seg-student.cfg"
train "student alone" "$out/student.log" segmenter train "$data" cfg/fashion-seg-student.cfg

step "mIoU on the 1000 valid canvases (11 classes, 255 ignored)"
t=$(miou cfg/fashion-seg-teacher.cfg "$out/fashion-seg-teacher.weights")
d=$(miou cfg/fashion-seg-student-tat.cfg "$out/fashion-seg-student-tat.weights")
s=$(miou cfg/fashion-seg-student.cfg "$out/fashion-seg-student.weights")
printf '  %-26s %s\n' "teacher" "$t" "student + TaT distillation" "$d" "student alone" "$s" |
    tee "$out/results.txt"
