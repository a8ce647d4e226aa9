#!/bin/bash
# The main job, end to end on a fresh machine: dependencies, build, Fashion-MNIST in Darknet's
# layout, a teacher on all 60k labelled images (trained once, reused while its cfg is
# unchanged), then the setting the low-data study chose by its pre-registered rule
# (docs/study-protocol.md, docs/results-lowdata.md): a student given 1,000 labelled images
# (100 per class) and distilled with logit KD, the other 58,000 training images entering
# unlabelled (they feed the distillation term only), against the same student alone on the
# same 1,000 labelled images, same budget and seed. Top-1 of all three on the 10k test set.
# Logs go to backup/fashion/*.log, the students' cfgs and weights to backup/fashion/lowdata/.
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${SEED:-1}
dataset=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
data=data/fashion-mnist/fashion.data
lowdata=data/fashion-lowdata-1k
out=backup/fashion
dn=darknet/darknet
# the study's setting (docs/study-protocol.md): subset, budget, unlabelled fraction
per_class=100 holdout_per_class=100 subset_seed=1 iterations=700 fraction=0.5
method_cfg=cfg/fashion-student-kd.cfg

# step and train: see scripts/demo-common.sh
. scripts/demo-common.sh
top1() { # top1 <cfg> <weights>: Darknet's validation over the 10k test set
    "$dn" classifier valid "$data" "$1" "$2" 2> /dev/null | tail -n 1 | sed 's/.*top 1: \([0-9.]*\),.*/\1/'
}
# budget <cfg> <copy>: the shipped cfg with the study's number of iterations
budget() { sed "s/^max_batches=.*/max_batches=$iterations/" "$1" > "$2"; }

step "dependencies (Debian packages)"
scripts/install-deps.sh
step "build"
make --no-print-directory
step "data: Fashion-MNIST -> data/fashion-mnist, and $lowdata (1k labelled, the rest unlabelled)"
build/tools/fashion_mnist_to_darknet "$dataset" data/fashion-mnist
build/tools/fashion_mnist_to_darknet "$dataset" "$lowdata" --train-per-class "$per_class" \
    --holdout-per-class "$holdout_per_class" --subset-seed "$subset_seed" | tail -n 1
mkdir -p "$out/lowdata"

step "teacher: cfg/fashion-teacher.cfg, all 60k labelled images"
teacher_id=$(cat cfg/fashion-teacher.cfg | sha256sum | cut -c1-16)
if [ -f "$out/fashion-teacher.weights" ] && [ "$(cat "$out/fashion-teacher.id" 2> /dev/null)" = "$teacher_id" ]; then
    echo "reusing $out/fashion-teacher.weights (trained from this cfg; delete it to retrain)"
else
    train teacher "$out/teacher.log" classifier train "$data" cfg/fashion-teacher.cfg
    echo "$teacher_id" > "$out/fashion-teacher.id"
fi

name=$(basename "$method_cfg" .cfg)
budget "$method_cfg" "$out/lowdata/$name.cfg"
budget cfg/fashion-student.cfg "$out/lowdata/fashion-student.cfg"
sed "s|^backup *=.*|backup=$out/lowdata/|" "$lowdata/fashion.data" > "$out/lowdata/alone.data"
{ cat "$out/lowdata/alone.data"; printf 'unlabeled=%s/unlabeled.list\nunlabeled_fraction=%s\n' "$lowdata" "$fraction"; } \
    > "$out/lowdata/distill.data"

step "student distilled with logit KD: $method_cfg, $iterations iterations, 1k labelled + 58k unlabelled"
train "student + KD" "$out/student-kd.log" distill classifier train "$out/lowdata/distill.data" \
    "$out/lowdata/$name.cfg" cfg/fashion-teacher.cfg "$out/fashion-teacher.weights"
echo "distillation term, first and last step:"
grep '^distill: .*avg' "$out/student-kd.log" | sed -n '1p;$p' | sed 's/^/  /'

step "the same student alone on the same 1k labelled images, same budget and seed: cfg/fashion-student.cfg"
train "student alone" "$out/student-alone.log" classifier train "$out/lowdata/alone.data" "$out/lowdata/fashion-student.cfg"

step "top-1 accuracy on the 10k test set"
t=$(top1 cfg/fashion-teacher.cfg "$out/fashion-teacher.weights")
d=$(top1 "$out/lowdata/$name.cfg" "$out/lowdata/$name.weights")
s=$(top1 "$out/lowdata/fashion-student.cfg" "$out/lowdata/fashion-student.weights")
echo "  setting: students given 1k labelled images (100 per class); the distilled one also sees the other 58k unlabelled"
printf '  %-30s %s\n' "teacher (60k labelled)" "$t" "student + KD (logits)" "$d" "student alone" "$s" |
    tee "$out/results.txt"
