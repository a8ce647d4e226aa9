#!/bin/bash
# Stopping and resuming through the real binary, in both training loops: a run stopped with
# SIGINT (distill classifier train) or SIGTERM (segmenter train) finishes its iteration, saves
# backup/<cfg name>.backup, prints one line naming it, exits 0; the same command given that
# file resumes at the next iteration.
# Needs DARKNET, build/tools/fashion_mnist_to_darknet, build/tools/fashion_seg_to_darknet and
# the Fashion-MNIST package.
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
fashion_subset stop_resume 64

data_file > cls.data
{ net_head batch=8 learning_rate=0.01 policy=constant max_batches=1; conv 8; pool; head_out; } > teacher.cfg
"$DARKNET" classifier train cls.data teacher.cfg -seed 1 > teacher.log 2>&1
student() { # student <max_batches>
    net_head batch=8 learning_rate=0.01 policy=constant max_batches="$1"; conv 4; pool
    printf '[tat_distill]\nteacher_layer=1\nteacher_channels=8\nloss_weight=1\n\n'
    head_out
}
mkdir -p long short
student 100000 > long/student.cfg

# stop_and_resume <name> <signal> <cfg name> <long cfg> <short cfg maker> -- <command before the
# weights file...>: runs the long cfg, signals it after its first epoch, then resumes with
# a cfg of the same name whose max_batches is two more than the stopped run reached.
stop_and_resume() {
    local name=$1 sig=$2 base=$3 long=$4 make_short=$5 pid rc i k first
    shift 6
    "$@" "$long" > "$name.log" 2> "$name.err" < /dev/null &
    pid=$!
    for i in $(seq 600); do
        # stderr is unbuffered: the first epoch's save (stdout reaches the file in blocks)
        grep -q "Saving weights to backup/${base}_1.weights" "$name.err" && break
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.1
    done
    kill "-$sig" "$pid" 2> /dev/null
    wait "$pid"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "FAIL ${name}_stop: exit status $rc after SIG$sig (want 0); $(tail -n 1 "$name.err")"
        return
    fi
    if [ "$(grep -c 'to resume' "$name.err")" -ne 1 ] || ! grep -q "SIG$sig at iteration [0-9]*: saved backup/$base.backup" "$name.err" ||
        [ ! -s "backup/$base.backup" ]; then
        echo "FAIL ${name}_stop: no single resume line naming backup/$base.backup, or no such file; $(tail -n 2 "$name.err" | tr '\n' ' ')"
        return
    fi
    echo "PASS ${name}_stop"
    k=$(sed -n "s/.*SIG$sig at iteration \([0-9]*\):.*/\1/p" "$name.err")
    "$make_short" $((k + 2))
    ("$@" "short/$base.cfg" "backup/$base.backup") > "$name-resume.log" 2> "$name-resume.err" < /dev/null
    rc=$?
    first=$(grep -E '^[0-9]+, ' "$name-resume.log" | head -n 1 | cut -d, -f1)
    if [ "$rc" -eq 0 ] && [ "$first" = $((k + 1)) ] && [ -s "backup/$base.weights" ]; then
        echo "PASS ${name}_resume"
    else
        echo "FAIL ${name}_resume: exit $rc, first iteration '$first' (want $((k + 1))); $(tail -n 1 "$name-resume.err")"
    fi
}

# Each command is a function that execs the binary, so that the background job's pid is the
# binary's (the signal must reach it, not a subshell). The distill command's order: data,
# student cfg, teacher cfg, teacher weights, [weights].
distill() { # distill <student cfg> [weights]
    exec "$DARKNET" distill classifier train cls.data "$1" teacher.cfg backup/teacher.weights ${2:+"$2"} -seed 2
}
short_student() { student "$1" > short/student.cfg; }
if [ -s backup/teacher.weights ]; then
    stop_and_resume distill_classifier INT student long/student.cfg short_student -- distill
else
    echo "FAIL stop_resume_teacher: no backup/teacher.weights; $(tail -n 1 teacher.log)"
fi

# segmenter loop: a few generated canvases, the shipped student cfg at batch 8
fashion_seg 32 8 || { echo "FAIL stop_resume_seg_generate: $(tail -n 1 gen.log)"; exit 0; }
seg_cfg() { sed -e 's/^batch=.*/batch=8/' -e "s/^max_batches=.*/max_batches=$1/" -e 's/^burn_in=.*/burn_in=0/' "$top/cfg/fashion-seg-student.cfg"; }
seg_cfg 100000 > long/fashion-seg-student.cfg
short_seg() { seg_cfg "$1" > short/fashion-seg-student.cfg; }
segment() { exec "$DARKNET" segmenter train seg.data "$1" ${2:+"$2"} -seed 3; }
stop_and_resume segmenter TERM fashion-seg-student long/fashion-seg-student.cfg short_seg -- segment
