#!/bin/bash
# The low-data study of docs/study-protocol.md: the Fashion-MNIST student alone and with KD,
# FitNet, TaT and TaT + KD, on stratified 1k and 5k labelled subsets, without and with the
# unlabelled rest of the training set, seeds 1-3; then (LOWDATA_CONFIRM=1, after the first
# table) seeds 4 and 5 of the setting chosen on the held-out split.
#
#   scripts/study-lowdata.sh                         (make study-lowdata)
#   LOWDATA_CONFIRM=1 scripts/study-lowdata.sh       (make study-lowdata LOWDATA_CONFIRM=1)
#
# Runs finished before are kept (results/lowdata/runs/<subset>-<none|rest>/<method>/seed<N>);
# delete results/lowdata to start over. Writes docs/results-lowdata.md and
# docs/study-lowdata-<subset>.png (scripts/study_lowdata_report.py).
#
# Narrowing, for checking the script (the report then says it is narrowed):
#   LOWDATA_METHODS   default "student kd fitnet tat tat-kd"
#   LOWDATA_SUBSETS   default "1k 5k"
#   LOWDATA_UNLABELED default "none rest"
#   LOWDATA_SEEDS     default "1 2 3"
# LOWDATA_SMOKE=1: a tiny end-to-end run of this script (5 and 10 images per class, a held-out
# split of 3 per class, 8 iterations of 16, 100 test images, a teacher of its own trained for 8
# iterations), into LOWDATA_OUT (default results/lowdata-smoke) and LOWDATA_DOCS (default
# LOWDATA_OUT/docs); nothing is built and no study result is produced.
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=${LOWDATA_SMOKE:-0}
confirm=${LOWDATA_CONFIRM:-0}
dataset=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
dn=${DARKNET:-darknet/darknet}
tool=${FASHION_TOOL:-build/tools/fashion_mnist_to_darknet}
methods=${LOWDATA_METHODS:-student kd fitnet tat tat-kd}
subsets=${LOWDATA_SUBSETS:-1k 5k}
conditions=${LOWDATA_UNLABELED:-none rest}
seeds=${LOWDATA_SEEDS:-1 2 3}
fraction=0.5
subset_seed=1
if [ "$smoke" = 1 ]; then
    out=${LOWDATA_OUT:-results/lowdata-smoke}
    docs=${LOWDATA_DOCS:-$out/docs}
    iters=8 batch=16 holdout=3
    per_class() { case $1 in 1k) echo 5 ;; 5k) echo 10 ;; esac; }
    datadir() { echo "$out/data/fashion-lowdata-$1"; }
else
    out=${LOWDATA_OUT:-results/lowdata}
    docs=${LOWDATA_DOCS:-docs}
    iters=700 batch=128 holdout=100
    per_class() { case $1 in 1k) echo 100 ;; 5k) echo 500 ;; esac; }
    datadir() { echo "data/fashion-lowdata-$1"; }
fi

cfg_of() { # the shipped cfg of a method
    case $1 in
    student) echo cfg/fashion-student.cfg ;;
    *) echo "cfg/fashion-student-$1.cfg" ;;
    esac
}
for m in $methods; do
    case $m in student | kd | fitnet | tat | tat-kd) ;; *) echo "study-lowdata: unknown method $m (student kd fitnet tat tat-kd)" >&2; exit 1 ;; esac
done
for s in $subsets; do
    case $s in 1k | 5k) ;; *) echo "study-lowdata: unknown subset $s (1k 5k)" >&2; exit 1 ;; esac
done
for c in $conditions; do
    case $c in none | rest) ;; *) echo "study-lowdata: unknown condition $c (none rest)" >&2; exit 1 ;; esac
done
top1() { # top1 <data> <cfg> <weights>
    "$dn" classifier valid "$1" "$2" "$3" 2> /dev/null | tail -n 1 | sed -n 's/.*top 1: \([0-9.]*\),.*/\1/p'
}

echo "== build and data"
if [ "$smoke" != 1 ]; then
    scripts/install-deps.sh
    make --no-print-directory
fi
mkdir -p "$out"
for s in $subsets; do
    d=$(datadir "$s")
    "$tool" "$dataset" "$d" --train-per-class "$(per_class "$s")" --holdout-per-class "$holdout" \
        --subset-seed "$subset_seed" > "$out/convert-$s.log"
    tail -n 1 "$out/convert-$s.log"
    if [ "$smoke" = 1 ]; then
        head -n 100 "$d/test.list" > "$d/test-smoke.list"
        sed "s|^valid=.*|valid=$d/test-smoke.list|" "$d/fashion.data" > "$d/test.data"
    else
        cp "$d/fashion.data" "$d/test.data"
    fi
done

echo "== teacher"
if [ "$smoke" = 1 ]; then
    teacher_dir=$out/teacher
    mkdir -p "$teacher_dir"
    first=$(datadir "${subsets%% *}")
    sed -e "s/^max_batches=.*/max_batches=$iters/" -e "s/^batch=.*/batch=$batch/" cfg/fashion-teacher.cfg > "$teacher_dir/fashion-teacher.cfg"
    teacher_cfg=$teacher_dir/fashion-teacher.cfg
    if [ ! -f "$teacher_dir/fashion-teacher.weights" ]; then
        sed "s|^backup=.*|backup=$teacher_dir/|" "$first/fashion.data" > "$teacher_dir/teacher.data"
        "$dn" classifier train "$teacher_dir/teacher.data" "$teacher_cfg" -seed 1 > "$teacher_dir/teacher.log" 2>&1
    fi
    top1 "$first/test.data" "$teacher_cfg" "$teacher_dir/fashion-teacher.weights" > "$out/teacher-top1"
else
    # the teacher of make demo and make study, trained on all 60k labelled images
    teacher_dir=backup/fashion
    teacher_cfg=cfg/fashion-teacher.cfg
    full=data/fashion-mnist/fashion.data
    "$tool" "$dataset" data/fashion-mnist > /dev/null
    mkdir -p "$teacher_dir"
    teacher_id=$(sha256sum < "$teacher_cfg" | cut -c1-16)
    if [ -f "$teacher_dir/fashion-teacher.weights" ] && [ "$(cat "$teacher_dir/fashion-teacher.id" 2> /dev/null)" = "$teacher_id" ]; then
        echo "reusing $teacher_dir/fashion-teacher.weights (trained from this cfg)"
    else
        "$dn" classifier train "$full" "$teacher_cfg" -seed 1 > "$teacher_dir/teacher.log" 2> "$teacher_dir/teacher.log.err"
        echo "$teacher_id" > "$teacher_dir/fashion-teacher.id"
    fi
    top1 "$full" "$teacher_cfg" "$teacher_dir/fashion-teacher.weights" > "$out/teacher-top1"
fi
echo "teacher top-1: $(cat "$out/teacher-top1")"

# one_run <subset> <none|rest> <method> <seed>
one_run() {
    local s=$1 c=$2 m=$3 seed=$4 d run name cfg start final e stride epochs w
    d=$(datadir "$s")
    run=$out/runs/$s-$c/$m/seed$seed
    [ -f "$run/done" ] && { echo "== $s $c $m seed $seed: done before, kept"; return; }
    rm -rf "$run"
    mkdir -p "$run"
    if [ "$m" = student ] && [ "$c" = rest ]; then
        # the batch-composition control: KD's cfg with its term weighted 0
        name=fashion-student-kd
        sed -e "s/^max_batches=.*/max_batches=$iters/" -e 's/^loss_weight=.*/loss_weight=0/' "$(cfg_of kd)" > "$run/$name.cfg"
    else
        name=$(basename "$(cfg_of "$m")" .cfg)
        sed "s/^max_batches=.*/max_batches=$iters/" "$(cfg_of "$m")" > "$run/$name.cfg"
    fi
    cfg=$run/$name.cfg
    [ "$smoke" != 1 ] || sed -i "s/^batch=.*/batch=$batch/" "$cfg"
    sed "s|^backup *=.*|backup=$run/|" "$d/fashion.data" > "$run/run.data"
    [ "$c" = none ] || printf 'unlabeled=%s/unlabeled.list\nunlabeled_fraction=%s\n' "$d" "$fraction" >> "$run/run.data"
    echo "== $s $c $m seed $seed: $iters iterations"
    start=$(date +%s.%N)
    if [ "$m" = student ] && [ "$c" = none ]; then
        set -- classifier train "$run/run.data" "$cfg"
    else
        set -- distill classifier train "$run/run.data" "$cfg" "$teacher_cfg" "$teacher_dir/fashion-teacher.weights"
    fi
    "$dn" "$@" -seed "$seed" > "$run/train.log" 2> "$run/train.err" || {
        echo "study-lowdata: $s $c $m seed $seed failed; the end of $run/train.err:" >&2
        tail -n 5 "$run/train.err" >&2
        exit 1
    }
    echo "$(date +%s.%N) $start" | awk '{printf "%.1f\n", $1 - $2}' > "$run/seconds"
    # every k-th epoch checkpoint (k = max(1, E / 6)), then the final weights (the table's)
    epochs=$(ls "$run/${name}"_[0-9]*.weights 2> /dev/null | sed 's/.*_\([0-9]*\)\.weights$/\1/' | sort -n | tail -n 1)
    stride=$(( ${epochs:-0} / 6 ))
    [ "$stride" -ge 1 ] || stride=1
    printf 'epoch\ttest\tholdout\n' > "$run/top1.tsv"
    for w in "$run/${name}"_[0-9]*.weights; do
        [ -f "$w" ] || continue
        e=${w##*_}
        e=${e%.weights}
        if [ $(( e % stride )) -eq 0 ]; then
            printf '%s\t%s\t%s\n' "$e" "$(top1 "$d/test.data" "$cfg" "$w")" "$(top1 "$d/holdout.data" "$cfg" "$w")" >> "$run/top1.tsv"
        fi
        rm -f "$w"
    done
    final=$(top1 "$d/test.data" "$cfg" "$run/$name.weights")
    printf 'final\t%s\t%s\n' "$final" "$(top1 "$d/holdout.data" "$cfg" "$run/$name.weights")" >> "$run/top1.tsv"
    echo "$s $c $m seed $seed: test top-1 $final in $(cat "$run/seconds") s"
    touch "$run/done"
}

narrowed=()
[ "$methods" = "student kd fitnet tat tat-kd" ] || narrowed+=("methods: $methods")
[ "$subsets" = "1k 5k" ] || narrowed+=("subsets: $subsets")
[ "$conditions" = "none rest" ] || narrowed+=("unlabelled: $conditions")
[ "$seeds" = "1 2 3" ] || narrowed+=("seeds: $seeds")
report() {
    # Debian's python3 (matplotlib from make deps), not whichever python3 is first on PATH
    "${LOWDATA_PYTHON:-/usr/bin/python3}" scripts/study_lowdata_report.py --results "$out" --docs "$docs" \
        --iters "$iters" --batch "$batch" --fraction "$fraction" --smoke "$smoke" \
        --narrowed "$(IFS=';'; echo "${narrowed[*]:-}")"
}

if [ "$confirm" = 1 ]; then
    [ -f "$out/confirm-setting" ] || { echo "study-lowdata: no $out/confirm-setting: run the first table first" >&2; exit 1; }
    read -r s c m < "$out/confirm-setting"
    echo "== confirmation: $s $c $m, seeds 4 and 5 (chosen on the held-out split)"
    for seed in 4 5; do one_run "$s" "$c" "$m" "$seed"; done
else
    for s in $subsets; do
        for c in $conditions; do
            for m in $methods; do
                for seed in $seeds; do one_run "$s" "$c" "$m" "$seed"; done
            done
        done
    done
fi

echo "== report"
report
