# Sourced by the shell tests (not a test itself: tests/run.sh runs only tests/test_*.sh):
#   . "$(dirname "$0")/lib.sh"       (tests/gpu/: . "$(dirname "$0")/../lib.sh")
# Sets $top (the repository's top directory) and defines:
#   expect_error                      a refused command: its exit status and its message
#   enter_tmp, need_fashion_mnist, fashion_subset, fashion_seg      where a test runs, its data
#   data_file                         a Darknet .data file for the Fashion-MNIST subset
#   net_head, conv, pool, logits, head_out      cfg sections of the small test networks
#   losses_of, distill_losses, mean   numbers read from a training log

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fashion_mnist=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}

# ---- refusals ---------------------------------------------------------------------------------
# expect_error <mode> <name> <words> [<file>...] -- <command...>
#   Runs the command in the current directory (stdout to out.log, stderr to err.log, stdin
#   /dev/null) and prints PASS <name> when
#     - its exit status is what <mode> asks for:
#         exit1              exactly 1
#         nonzero            1 to 128: a plain non-zero exit, not a death by a signal
#         nonzero-lastline   1 to 128, as nonzero
#     - every word of <words> (split at white space, not globbed) appears in stderr: anywhere
#       in it (exit1, nonzero) or in its last line (nonzero-lastline);
#     - each <file> named before the -- is as it was before the command (same sha256sum);
#   and FAIL <name>: <what was wrong> otherwise. SHOW_ERRORS=1 echoes each command's exit
#   status and its last line of stderr that is not a Loading/Saving/Done progress line.
expect_error() {
    local mode=$1 name=$2 words=$3 keep=() want w rc last before=
    shift 3
    while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
        keep+=("$1")
        shift
    done
    if [ "$#" -eq 0 ]; then
        echo "FAIL $name: expect_error: no -- before the command"
        return
    fi
    shift
    case $mode in
    exit1) want="1" ;;
    nonzero | nonzero-lastline) want="a plain non-zero exit" ;;
    *) echo "FAIL $name: expect_error: unknown mode '$mode' (exit1, nonzero, nonzero-lastline)"; return ;;
    esac
    [ "${#keep[@]}" -eq 0 ] || before=$(sha256sum "${keep[@]}")
    "$@" > out.log 2> err.log < /dev/null
    rc=$?
    last=$(tail -n 1 err.log)
    [ -z "${SHOW_ERRORS:-}" ] || echo "  $name: exit $rc: $(grep -v '^Saving\|^Loading\|^Done' err.log | tail -n 1)"
    if { [ "$mode" = exit1 ] && [ "$rc" -ne 1 ]; } || [ "$rc" -eq 0 ] || [ "$rc" -gt 128 ]; then
        echo "FAIL $name: exit status $rc (want $want); stderr: $last"
        return
    fi
    read -r -a words <<< "$words"
    for w in ${words[@]+"${words[@]}"}; do
        if [ "$mode" = nonzero-lastline ]; then
            case $last in
            *"$w"*) ;;
            *) echo "FAIL $name: the last line of stderr lacks '$w': $last"; return ;;
            esac
        elif ! grep -qF -- "$w" err.log; then
            echo "FAIL $name: stderr lacks '$w': $(tail -n 2 err.log | tr '\n' ' ')"
            return
        fi
    done
    if [ "${#keep[@]}" -gt 0 ] && [ "$(sha256sum "${keep[@]}")" != "$before" ]; then
        echo "FAIL $name: the command changed ${keep[*]}"
        return
    fi
    echo "PASS $name"
}

# ---- where a test runs, and its data ----------------------------------------------------------
# enter_tmp: a new temporary directory, $tmp, removed at exit; leaves the caller in it.
enter_tmp() {
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    cd "$tmp" || exit 1
}

# need_fashion_mnist <test name>: prints SKIP and exits when the Fashion-MNIST package (in
# $FASHION_MNIST_DIR, default /usr/share/datasets/fashion-mnist) is not installed.
need_fashion_mnist() {
    if [ ! -f "$fashion_mnist/train-images-idx3-ubyte.gz" ]; then
        echo "SKIP $1: no Fashion-MNIST in $fashion_mnist (make deps installs dataset-fashion-mnist)"
        exit 0
    fi
}

# fashion_subset <test name> <train images>: a few real Fashion-MNIST images to train on.
# Leaves the caller in a new temporary directory (enter_tmp) holding data/ (Darknet's
# classification layout: data/train.list, data/test.list, data/labels.txt) and an empty
# backup/. Prints SKIP and exits when the data set is not installed, FAIL and exits when the
# conversion (build/tools/fashion_mnist_to_darknet, or $FASHION_TOOL) fails.
fashion_subset() {
    local name=$1 limit=$2
    need_fashion_mnist "$name"
    enter_tmp
    "${FASHION_TOOL:-$top/build/tools/fashion_mnist_to_darknet}" "$fashion_mnist" data --train-limit "$limit" > convert.log 2>&1 || {
        echo "FAIL ${name}_convert: $(tail -n 1 convert.log)"
        exit 0
    }
    mkdir -p backup
}

# fashion_seg <train canvases> <valid canvases>: a generated segmentation set in seg/
# (build/tools/fashion_seg_to_darknet, or $FASHION_SEG_TOOL; its output in gen.log) and
# seg.data, its .data file saving to backup/. Non-zero when the generation fails.
fashion_seg() {
    "${FASHION_SEG_TOOL:-$top/build/tools/fashion_seg_to_darknet}" "$fashion_mnist" seg --train "$1" --valid "$2" > gen.log 2>&1 &&
        sed 's|^backup=.*|backup=backup|' seg/fashion-seg.data > seg.data
}

# data_file [key=value...]: prints a .data file for the Fashion-MNIST subset, its lines in this
# order: classes=10, train=data/train.list, valid= (none unless given), labels=data/labels.txt,
# backup=backup, then any other key=value (top=2, tree=...) in the order given. A key given
# empty (backup=) leaves its line out.
data_file() {
    local classes=10 train=data/train.list valid='' labels=data/labels.txt backup=backup more=() arg
    for arg; do
        case $arg in
        classes=* | train=* | valid=* | labels=* | backup=*) local "$arg" ;;
        [a-z]*=*) more+=("$arg") ;;
        *) echo "data_file: '$arg' is not key=value" >&2; return 1 ;;
        esac
    done
    for arg in "classes=$classes" "train=$train" "valid=$valid" "labels=$labels" "backup=$backup" ${more[@]+"${more[@]}"}; do
        [ -z "${arg#*=}" ] || printf '%s\n' "$arg"
    done
}

# ---- cfg sections of the small test networks (28x28 Fashion-MNIST images, 10 classes) ----------
# net_head [key=value...]: the [net] section: a 28x28 input (width, height, min_crop, max_crop),
# momentum 0.9, decay 0.0005, and these settings (defaults after the =):
#   batch=32 subdivisions=1 channels=3 learning_rate=0.1 max_batches=1
#   policy=poly    poly: policy=poly, power=1; constant: policy=constant;
#                  steps: policy=steps, steps=4,8, scales=.5,.5; empty: no policy line
net_head() {
    local batch=32 subdivisions=1 channels=3 learning_rate=0.1 policy=poly max_batches=1 arg schedule
    for arg; do
        case $arg in
        batch=* | subdivisions=* | channels=* | learning_rate=* | policy=* | max_batches=*) local "$arg" ;;
        *) echo "net_head: unknown setting '$arg'" >&2; return 1 ;;
        esac
    done
    case $policy in
    poly) schedule=$'policy=poly\npower=1\n' ;;
    constant) schedule=$'policy=constant\n' ;;
    steps) schedule=$'policy=steps\nsteps=4,8\nscales=.5,.5\n' ;;
    '') schedule='' ;;
    *) echo "net_head: unknown policy '$policy'" >&2; return 1 ;;
    esac
    printf '[net]\nbatch=%s\nsubdivisions=%s\nwidth=28\nheight=28\nchannels=%s\nmin_crop=28\nmax_crop=28\n' \
        "$batch" "$subdivisions" "$channels"
    printf 'learning_rate=%s\nmomentum=0.9\ndecay=0.0005\n%smax_batches=%s\n\n' "$learning_rate" "$schedule" "$max_batches"
}
# conv <filters> [size, default 3]: a batch-normalised leaky convolution, stride 1, padded
conv() { printf '[convolutional]\nbatch_normalize=1\nfilters=%d\nsize=%d\nstride=1\npad=1\nactivation=leaky\n\n' "$1" "${2:-3}"; }
# pool: a 2x2 max pool, stride 2
pool() { printf '[maxpool]\nsize=2\nstride=2\n\n'; }
# logits [extra line]: a 1x1 linear convolution to 10 filters (the line, e.g. learning_rate=1e38,
# added to its section) and an [avgpool]: the 10 logits
logits() { printf '[convolutional]\nfilters=10\nsize=1\nstride=1\npad=1\nactivation=linear\n%s\n[avgpool]\n\n' "${1:-}"; }
# head_out [extra line]: logits and a [softmax]
head_out() { logits "${1:-}"; printf '[softmax]\n'; }

# ---- numbers from a training log --------------------------------------------------------------
# losses_of <log>: the loss lines (progress and distillation terms) without their timings
losses_of() { grep -E '^[0-9]+, [0-9.]+: |^distill: .*avg' "$1" | sed 's/ rate, [0-9.]* seconds.*//'; }
# distill_losses <log> [layer type, default tat_distill]: the loss of the first distillation
# section of that type, one line an iteration ("distill: kd_distill[7] 1.234, 1.300 avg;" -> 1.234)
distill_losses() {
    local type=${2:-tat_distill}
    grep "^distill: $type\[" "$1" | sed "s/^distill: $type\[[0-9]*\] \([^,]*\),.*/\1/"
}
# mean: the mean of the first field of the lines on stdin
mean() { awk '{s += $1} END {print s / NR}'; }
