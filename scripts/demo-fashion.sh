#!/bin/bash
# The main job, end to end on a fresh machine: dependencies, build, Fashion-MNIST in Darknet's
# layout, a teacher (trained once, reused while its cfg is unchanged), the student distilled
# with TaT, the same student trained alone with the same budget and seed, and the top-1
# accuracy of all three on the 10k test set. Logs go to backup/fashion/*.log.
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${SEED:-1}
dataset=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
data=data/fashion-mnist/fashion.data
out=backup/fashion
dn=darknet/darknet

# step and train: see scripts/demo-common.sh
. scripts/demo-common.sh
top1() { # top1 <cfg> <weights>: Darknet's validation over the data file's valid list
    "$dn" classifier valid "$data" "$1" "$2" 2> /dev/null | tail -n 1 | sed 's/.*top 1: \([0-9.]*\),.*/\1/'
}

step "dependencies (Debian packages)"
scripts/install-deps.sh
step "build"
make --no-print-directory
step "data: Fashion-MNIST -> data/fashion-mnist"
build/tools/fashion_mnist_to_darknet "$dataset" data/fashion-mnist
mkdir -p "$out"

step "teacher: cfg/fashion-teacher.cfg"
teacher_id=$(cat cfg/fashion-teacher.cfg | sha256sum | cut -c1-16)
if [ -f "$out/fashion-teacher.weights" ] && [ "$(cat "$out/fashion-teacher.id" 2> /dev/null)" = "$teacher_id" ]; then
    echo "reusing $out/fashion-teacher.weights (trained from this cfg; delete it to retrain)"
else
    train teacher "$out/teacher.log" classifier train "$data" cfg/fashion-teacher.cfg
    echo "$teacher_id" > "$out/fashion-teacher.id"
fi

step "student distilled with TaT: cfg/fashion-student-tat.cfg"
train "student + TaT" "$out/student-tat.log" distill classifier train "$data" \
    cfg/fashion-student-tat.cfg cfg/fashion-teacher.cfg "$out/fashion-teacher.weights"
echo "distillation terms, first and last step:"
grep '^distill: .*avg' "$out/student-tat.log" | sed -n '1p;$p' | sed 's/^/  /'

step "the same student alone, same budget and seed: cfg/fashion-student.cfg"
train "student alone" "$out/student.log" classifier train "$data" cfg/fashion-student.cfg

step "top-1 accuracy on the 10k test set"
t=$(top1 cfg/fashion-teacher.cfg "$out/fashion-teacher.weights")
d=$(top1 cfg/fashion-student-tat.cfg "$out/fashion-student-tat.weights")
s=$(top1 cfg/fashion-student.cfg "$out/fashion-student.weights")
printf '  %-26s %s\n' "teacher" "$t" "student + TaT distillation" "$d" "student alone" "$s" |
    tee "$out/results.txt"
