#!/bin/bash
# Does it distill better? The same Fashion-MNIST student trained alone and with each
# distillation method, several seeds each, on the official split (60k train, 10k test).
#
#   scripts/study-fashion.sh          (make study)
#
# One teacher (cfg/fashion-teacher.cfg, trained once and shared with `make demo`); then, for
# every method and seed, the student cfg of that method with max_batches set to the study's
# budget (nothing else changes: same schedule shape, augmentation, batch and seed for all).
# Top-1 on the 10k test set is measured at every epoch checkpoint Darknet writes and at the
# end; the table reports the LAST one (no selection on the test set). Runs already finished
# are kept (delete results/study to start over). Writes docs/results.md, docs/study-*.png and
# an attention map of one TaT student (docs/study-attention.png).
#
# Environment: STUDY_ITERS (default 938 = 2 epochs of 128), STUDY_SEEDS (default "1 2 3"),
# STUDY_METHODS (default: all six below).
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${STUDY_ITERS:-938}
seeds=${STUDY_SEEDS:-1 2 3}
methods=${STUDY_METHODS:-student kd fitnet tat tat-patch tat-kd}
dataset=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
data=data/fashion-mnist/fashion.data
teacher_dir=backup/fashion
out=results/study
dn=darknet/darknet

cfg_of() { # the shipped cfg of a method
    case $1 in
    student) echo cfg/fashion-student.cfg ;;
    *) echo "cfg/fashion-student-$1.cfg" ;;
    esac
}
for m in $methods; do
    [ -f "$(cfg_of "$m")" ] || { echo "study: unknown method $m (no $(cfg_of "$m"))" >&2; exit 1; }
done
top1() { # top1 <data> <cfg> <weights>
    "$dn" classifier valid "$1" "$2" "$3" 2> /dev/null | tail -n 1 | sed -n 's/.*top 1: \([0-9.]*\),.*/\1/p'
}

echo "== build and data"
scripts/install-deps.sh
make --no-print-directory
build/tools/fashion_mnist_to_darknet "$dataset" data/fashion-mnist > /dev/null
mkdir -p "$teacher_dir" "$out"

echo "== teacher: cfg/fashion-teacher.cfg"
teacher_id=$(sha256sum < cfg/fashion-teacher.cfg | cut -c1-16)
if [ -f "$teacher_dir/fashion-teacher.weights" ] && [ "$(cat "$teacher_dir/fashion-teacher.id" 2> /dev/null)" = "$teacher_id" ]; then
    echo "reusing $teacher_dir/fashion-teacher.weights (trained from this cfg)"
else
    "$dn" classifier train "$data" cfg/fashion-teacher.cfg -seed 1 > "$teacher_dir/teacher.log" 2> "$teacher_dir/teacher.log.err"
    echo "$teacher_id" > "$teacher_dir/fashion-teacher.id"
fi
teacher_top1=$(top1 "$data" cfg/fashion-teacher.cfg "$teacher_dir/fashion-teacher.weights")
echo "teacher top-1: $teacher_top1"
echo "$teacher_top1" > "$out/teacher-top1"

for m in $methods; do
    for seed in $seeds; do
        run=$out/runs/$m/seed$seed
        [ -f "$run/done" ] && { echo "== $m seed $seed: done before, kept"; continue; }
        rm -rf "$run"
        mkdir -p "$run"
        name=$(basename "$(cfg_of "$m")" .cfg)
        sed "s/^max_batches=.*/max_batches=$iters/" "$(cfg_of "$m")" > "$run/$name.cfg"
        sed "s|^backup *=.*|backup=$run/|" "$data" > "$run/run.data"
        echo "== $m seed $seed: $iters iterations"
        start=$(date +%s.%N)
        if [ "$m" = student ]; then
            set -- classifier train "$run/run.data" "$run/$name.cfg"
        else
            set -- distill classifier train "$run/run.data" "$run/$name.cfg" cfg/fashion-teacher.cfg \
                "$teacher_dir/fashion-teacher.weights"
        fi
        "$dn" "$@" -seed "$seed" > "$run/train.log" 2> "$run/train.err" || {
            echo "study: $m seed $seed failed; the end of $run/train.err:" >&2
            tail -n 5 "$run/train.err" >&2
            exit 1
        }
        echo "$(date +%s.%N) $start" | awk '{printf "%.1f\n", $1 - $2}' > "$run/seconds"
        # epoch checkpoints, then the final weights (the number the table uses)
        : > "$run/top1.tsv"
        for w in "$run/${name}"_[0-9]*.weights; do
            e=${w##*_}
            printf '%s\t%s\n' "${e%.weights}" "$(top1 "$run/run.data" "$run/$name.cfg" "$w")" >> "$run/top1.tsv"
        done
        final=$(top1 "$run/run.data" "$run/$name.cfg" "$run/$name.weights")
        printf 'final\t%s\n' "$final" >> "$run/top1.tsv"
        echo "$m seed $seed: top-1 $final in $(cat "$run/seconds") s"
        touch "$run/done"
    done
done

echo "== report"
# Debian's python3 (matplotlib from make deps), not whichever python3 is first on PATH
/usr/bin/python3 scripts/study_report.py --results "$out" --iters "$iters" --docs docs
# what one distilled student attends to: the first TaT seed, the first test image
run=$out/runs/tat/$(ls "$out/runs/tat" 2> /dev/null | head -n 1)
if [ -f "$run/done" ]; then
    "$dn" distill attention "$run/fashion-student-tat.cfg" "$run/fashion-student-tat.weights" \
        cfg/fashion-teacher.cfg "$teacher_dir/fashion-teacher.weights" \
        "$(head -n 1 data/fashion-mnist/test.list)" docs/study-attention.png -at 3,3,0,0,6,2 \
        2> /dev/null | sed "s|$out/runs/||" > docs/study-attention.txt
    cat docs/study-attention.txt
fi
