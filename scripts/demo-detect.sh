#!/bin/bash
# Detection end to end: dependencies, build, a Fashion-MNIST detection set (64x64 canvases of 1
# to 4 items at several scales, 10 classes, YOLO label files), a small YOLOv3 teacher (trained
# once, reused while its cfg and the data are unchanged), the tiny student distilled from it
# (TaT on the stride-16 backbone map, objectness-scaled KD on both [yolo] heads), the same
# student trained alone with the same budget and seed, and the mAP@0.5 of all three on the 500
# valid canvases. Logs go to backup/fashion-det/*.log.
#   DETECT_ITERATIONS=N  overrides max_batches of all three cfgs (a shortened check; the cfgs
#                        used then go to backup/fashion-det/cfg/)
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${SEED:-1}
dataset=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
data=data/fashion-det/fashion-det.data
out=backup/fashion-det
dn=darknet/darknet

# step and train: see scripts/demo-common.sh
. scripts/demo-common.sh
map50() { # map50 <cfg> <weights>: the mAP@0.5 line of `distill detector map`
    "$dn" distill detector map "$data" "$1" "$2" 2> /dev/null | sed -n 's/^mAP@0.5 //p'
}
last_step() { grep -E '^[0-9]+: ' "$1" | tail -n 1 | cut -d, -f1-2; }

step "dependencies (Debian packages)"
scripts/install-deps.sh
step "build"
make --no-print-directory
step "data: Fashion-MNIST -> data/fashion-det (detection canvases)"
build/tools/fashion_detect_to_darknet "$dataset" data/fashion-det
mkdir -p "$out"

teacher=cfg/fashion-det-teacher.cfg student=cfg/fashion-det-student.cfg distilled=cfg/fashion-det-student-distill.cfg
if [ -n "${DETECT_ITERATIONS:-}" ]; then
    mkdir -p "$out/cfg"
    for c in "$teacher" "$student" "$distilled"; do
        sed "s/^max_batches=.*/max_batches=$DETECT_ITERATIONS/;s/^steps=.*/steps=$((DETECT_ITERATIONS * 4 / 5))/" "$c" > "$out/cfg/${c#cfg/}"
    done
    teacher=$out/cfg/${teacher#cfg/} student=$out/cfg/${student#cfg/} distilled=$out/cfg/${distilled#cfg/}
    echo "shortened run: max_batches=$DETECT_ITERATIONS (cfgs in $out/cfg/)"
fi

step "teacher: $teacher"
teacher_id=$(cat "$teacher" data/fashion-det/.complete | sha256sum | cut -c1-16)
if [ -f "$out/fashion-det-teacher_final.weights" ] && [ "$(cat "$out/fashion-det-teacher.id" 2> /dev/null)" = "$teacher_id" ]; then
    echo "reusing $out/fashion-det-teacher_final.weights (trained from this cfg and data; delete it to retrain)"
else
    train teacher "$out/teacher.log" detector train "$data" "$teacher"
    echo "$teacher_id" > "$out/fashion-det-teacher.id"
fi
echo "teacher: last step $(last_step "$out/teacher.log")"

step "student distilled (TaT + objectness-scaled KD): $distilled"
train "student + distillation" "$out/student-distill.log" distill detector train "$data" \
    "$distilled" "$teacher" "$out/fashion-det-teacher_final.weights"
echo "distillation terms, first and last step:"
grep '^distill: .*avg' "$out/student-distill.log" | sed -n '1p;$p' | sed 's/^/  /'

step "the same student alone, same budget and seed: $student"
train "student alone" "$out/student.log" detector train "$data" "$student"

step "mAP@0.5 on the 500 valid canvases (10 classes; distill detector map)"
t=$(map50 "$teacher" "$out/fashion-det-teacher_final.weights")
d=$(map50 "$distilled" "$out/fashion-det-student-distill_final.weights")
s=$(map50 "$student" "$out/fashion-det-student_final.weights")
printf '  %-30s %s\n' "teacher" "$t" "student + distillation" "$d" "student alone" "$s" |
    tee "$out/results.txt"
