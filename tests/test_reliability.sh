#!/bin/bash
# Reliability of training runs through the real binary, on a few Fashion-MNIST images:
#   - checkpoints are atomic: runs killed with SIGKILL, half at random moments and half at a
#     random point inside a save, never leave a truncated .weights file (the atomic save patch);
#   - a NaN/Inf distillation or task loss stops the run naming the layer and the iteration,
#     exit 1, backups untouched; NaN weights are never saved;
#   - resuming a distill run from its weights continues the iteration count, the learning-rate
#     schedule and the learned embeddings;
#   - missing/corrupt images in the train list and an empty list: one-line error, exit 1.
# Needs DARKNET, build/tools/fashion_mnist_to_darknet and the Fashion-MNIST package.
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
# KILLS: how many runs to kill at least (more for a longer soak).
kills=${KILLS:-12}
fashion_subset reliability 64
head -n 8 data/train.list > small.list
data_file train=small.list valid=small.list > small.data
data_file train=data/train.list valid=data/train.list > all.data

# ---- atomic checkpoints ---------------------------------------------------------------------
# A 12 MB model saved at every iteration (each iteration is an epoch of the 8-image list): the
# run spends much of its time inside save_weights; half the kills land at random moments, half
# at a random point inside a save.
{ net_head batch=8 learning_rate=0.01 policy=steps max_batches=12; printf '[convolutional]\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n'
  printf '[connected]\noutput=256\nactivation=leaky\n\n[connected]\noutput=10\nactivation=linear\n\n[softmax]\n'; } > big.cfg
t0=$(date +%s%N)
"$DARKNET" classifier train small.data big.cfg -seed 3 > big.log 2>&1
run_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
size=$(stat -c %s backup/big.weights 2> /dev/null || echo 0)
if [ "$size" -lt 1000000 ]; then
    echo "FAIL atomic_save_setup: the reference run wrote no backup/big.weights; $(tail -n 1 big.log)"
else
    bad= midsave=0
    # at least $kills kills, and on until 3 of them landed mid-save (at most 4x as many)
    i=0
    while [ "$i" -lt "$kills" ] || { [ "$midsave" -lt 3 ] && [ "$i" -lt $((kills * 4)) ]; }; do
        i=$((i + 1))
        "$DARKNET" classifier train small.data big.cfg -seed 3 > kill.log 2>&1 &
        pid=$!
        if [ $((i % 2)) -eq 1 ]; then
            # at 20-95% of the reference run's duration: past start-up, before its end
            ms=$(( run_ms * (20 + RANDOM % 76) / 100 ))
            sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
        else
            # during a save: how long a save takes against an iteration differs between machines
            # and disks, so random moments alone can miss every save. Busy waits on shell
            # builtins: skip 1-3 saves, timing each (its temporary file's lifetime), then kill
            # at a random point of the next one, 0-100% of the last one's duration in.
            skip=$((1 + RANDOM % 3)) save_us=0
            while kill -0 "$pid" 2> /dev/null; do
                compgen -G 'backup/*.tmp' > /dev/null || continue
                t=${EPOCHREALTIME//[!0-9]/}
                if [ "$skip" -eq 0 ]; then
                    until_us=$((t + save_us * (RANDOM % 101) / 100))
                    while [ "${EPOCHREALTIME//[!0-9]/}" -lt "$until_us" ]; do :; done
                    break
                fi
                skip=$((skip - 1))
                while compgen -G 'backup/*.tmp' > /dev/null && kill -0 "$pid" 2> /dev/null; do :; done
                save_us=$((${EPOCHREALTIME//[!0-9]/} - t))
            done
        fi
        kill -9 "$pid" 2> /dev/null
        wait "$pid" 2> /dev/null
        ls backup/*.tmp > /dev/null 2>&1 && midsave=$((midsave + 1))
        for f in backup/big*.weights; do
            [ "$(stat -c %s "$f")" = "$size" ] || bad="$bad $f($(stat -c %s "$f") bytes, kill $i)"
        done
        rm -f backup/*.tmp
    done
    echo "INFO atomic save: $i runs killed (half at random points of a ${run_ms} ms run, half inside a save), $midsave of them during a save" >&2
    if [ -n "$bad" ]; then
        echo "FAIL atomic_save_kill: truncated after kill -9:$bad"
    elif [ "$midsave" -eq 0 ]; then
        echo "FAIL atomic_save_kill: no kill landed during a save (the test proved nothing)"
    else
        echo "PASS atomic_save_kill"
    fi
    # every surviving file still loads whole (the weights size check patch)
    if "$DARKNET" classifier valid small.data big.cfg backup/big_5.weights > valid.log 2>&1 &&
        ! grep -q 'do not match\|holds weights for' valid.log; then
        echo "PASS atomic_save_loadable"
    else
        echo "FAIL atomic_save_loadable: $(tail -n 1 valid.log)"
    fi
fi

# ---- distill runs: teacher, student ---------------------------------------------------------
{ net_head batch=8 learning_rate=0.01 policy=steps max_batches=1; conv 16; pool; conv 32; pool; head_out; } > teacher.cfg
"$DARKNET" classifier train small.data teacher.cfg -seed 1 > teacher.log 2>&1
# student: 0 conv, 1 pool, 2 conv, 3 pool (7x7x8), 4 tat_distill, 5 conv, 6 avgpool, 7 softmax
student() { # student <cfg> <max_batches> <learning_rate> <loss_weight> [head option]
    { net_head batch=8 learning_rate="$3" policy=steps max_batches="$2"; conv 4; pool; conv 8; pool
      printf '[tat_distill]\nteacher_layer=3\nteacher_channels=32\nkey=learned\nloss_weight=%s\n\n' "$4"
      head_out "${5:-}"; } > "$1"
}
distill() { # distill <data> <cfg> [args...]
    local d=$1 c=$2
    shift 2
    "$DARKNET" distill classifier train "$d" "$c" teacher.cfg backup/teacher.weights "$@"
}
if [ ! -f backup/teacher.weights ]; then
    echo "FAIL reliability_teacher: no backup/teacher.weights; $(tail -n 1 teacher.log)"
    exit 0
fi

# a weights file already in place must survive every failed run below
student keep.cfg 4 0.01 1
distill small.data keep.cfg -seed 2 > keep.log 2>&1
cp backup/keep.weights keep.orig 2> /dev/null || echo "FAIL reliability_keep_setup: $(tail -n 1 keep.log)"

# a distillation term that overflows at once: loss_weight near FLT_MAX
student keep.cfg 4 0.01 3e38
expect_error nonzero nan_distill_loss_stops "keep.cfg [tat_distill] (layer 4) inf iteration 1 stopping" \
    backup/keep.weights -- distill all.data keep.cfg -seed 2
# a head whose learning rate explodes: its weights go infinite in the first update, and the
# check after that iteration stops the run (the softmax's clamped loss may still be finite)
student keep.cfg 4 0.01 1 'learning_rate=1e38'
expect_error nonzero nan_task_loss_stops "keep.cfg [convolutional] (layer 5) weights hold NaN or Inf at iteration 1 stopping" \
    backup/keep.weights -- distill all.data keep.cfg -seed 2
# a head learning rate that overflows to Inf in the update itself, with an epoch save right
# after the first update: the check after the iteration stops the run before that save (the
# save itself would refuse NaN/Inf weights too), the previous files stay
student keep.cfg 4 10 1 'learning_rate=1e38'
expect_error nonzero nan_weights_not_saved "keep.cfg weights hold NaN or Inf at iteration 1 stopping" \
    backup/keep.weights -- distill small.data keep.cfg -seed 2
[ ! -f backup/keep_1.weights ] || [ "$(stat -c %s backup/keep_1.weights)" = "$(stat -c %s backup/keep.weights)" ] ||
    echo "FAIL nan_weights_not_saved: backup/keep_1.weights is partial"
student keep.cfg 4 0.01 nan
expect_error nonzero loss_weight_not_finite "keep.cfg [tat_distill] loss_weight finite" \
    backup/keep.weights -- distill all.data keep.cfg -seed 2

# ---- bad data -------------------------------------------------------------------------------
student keep.cfg 4 0.01 1
{ head -n 3 small.list; echo data/train/missing_c0_tshirt_top.png; } > missing.list
data_file train=missing.list valid=missing.list > missing.data
expect_error nonzero missing_image "data/train/missing_c0_tshirt_top.png missing.list cannot load" \
    backup/keep.weights -- distill missing.data keep.cfg -seed 2
head -c 100 "$(head -n 1 small.list)" > corrupt_c0_tshirt_top.png
{ echo corrupt_c0_tshirt_top.png; head -n 3 small.list; } > corrupt.list
data_file train=corrupt.list valid=corrupt.list > corrupt.data
expect_error nonzero corrupt_image "corrupt_c0_tshirt_top.png corrupt.list cannot load" \
    backup/keep.weights -- distill corrupt.data keep.cfg -seed 2
: > empty.list
data_file train=empty.list valid=empty.list > empty.data
expect_error nonzero empty_train_list "empty.list empty.data empty" \
    backup/keep.weights -- distill empty.data keep.cfg -seed 2
expect_error nonzero empty_train_list_classifier "empty.list empty" \
    backup/keep.weights -- "$DARKNET" classifier train empty.data keep.cfg backup/keep.weights
printf 'classes=10\ntrain=nowhere.list\nlabels=data/labels.txt\nbackup=backup\n' > nolist.data
expect_error nonzero missing_train_list "nowhere.list" \
    backup/keep.weights -- distill nolist.data keep.cfg -seed 2

# ---- resume ---------------------------------------------------------------------------------
# 6 iterations, then resume from the saved weights up to 10; compare with 10 straight. The
# schedule (steps 4,8) does not depend on max_batches, so all three runs share it.
progress() { grep -E '^[0-9]+, [0-9.]+: ' "$1" | awk '{sub(",", "", $1); print $1, $6}'; } # iteration rate
student resume.cfg 10 0.02 2
distill all.data resume.cfg -seed 5 > straight.log 2>&1
student resume.cfg 6 0.02 2
distill all.data resume.cfg -seed 5 > first.log 2>&1
cp backup/resume.weights six.weights
student resume.cfg 10 0.02 2
distill all.data resume.cfg six.weights -seed 5 > resumed.log 2>&1
rc=$?
want=$(progress straight.log | tail -n 4)
got=$(progress resumed.log)
if [ "$rc" -ne 0 ]; then
    echo "FAIL resume_runs: exit $rc; $(tail -n 1 resumed.log)"
elif [ -n "$want" ] && [ "$got" = "$want" ]; then
    echo "PASS resume_iterations_and_rate"
else
    echo "FAIL resume_iterations_and_rate: resumed '$(echo $got)' vs straight '$(echo $want)'"
fi
# The embeddings come back: resume once more with learning_rate=0 (nothing changes but BN
# rolling statistics, which the embeddings do not save) for one iteration. The embeddings'
# bytes in the new file equal the resumed-from file's, and the header counts 7 iterations.
# Offsets for this cfg: header 20 bytes; conv 4 (BN) 124 floats; conv 8 (BN) 320 floats;
# tat_distill q 320 + v 320 + learned key 1088 = 1728 floats.
student resume.cfg 7 0 2
"$DARKNET" distill classifier train all.data resume.cfg teacher.cfg backup/teacher.weights six.weights -seed 5 > zero.log 2>&1
off=$((20 + 4 * (124 + 320)))
seen=$(od -An -t u8 -j 12 -N 8 backup/resume.weights 2> /dev/null | tr -d ' ')
if [ "$(stat -c %s six.weights)" != 9068 ]; then
    echo "FAIL resume_restores_embeddings: six.weights is $(stat -c %s six.weights) bytes, the offsets assume 9068"
elif cmp -s -i "$off:$off" -n $((4 * 1728)) six.weights backup/resume.weights && [ "$seen" = 56 ]; then
    echo "PASS resume_restores_embeddings"
else
    echo "FAIL resume_restores_embeddings: seen $seen (want 56); embeddings $(cmp -i "$off:$off" -n $((4 * 1728)) six.weights backup/resume.weights 2>&1 | head -n 1); $(tail -n 1 zero.log)"
fi
# and the first resumed distill loss is reported (finite, the run continues)
l_res=$(distill_losses resumed.log | head -n 1)
l_last=$(distill_losses first.log | tail -n 1)
echo "INFO tat_distill loss: iteration 6 $l_last, 7 (resumed) $l_res" >&2
