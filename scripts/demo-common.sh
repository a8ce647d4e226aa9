# Shell functions shared by scripts/demo-fashion.sh and scripts/demo-segmentation.sh, which
# source it from the repo top after setting dn (the darknet binary) and SEED. Defines
# functions only; it is not meant to be run on its own.

# step <title>: a section heading in the demo's output
step() { printf '\n== %s\n' "$*"; }
# train <label> <log> <darknet args...>: runs quietly, reports the time and the last progress
# line (the classifier and segmenter print "N, epoch: loss, avg ...", the detector "N: loss, avg ...")
train() {
    local label=$1 log=$2 start=$SECONDS
    shift 2
    echo "$label: $dn $* (log: $log)"
    "$dn" "$@" -seed "$SEED" > "$log" 2> "$log.err" || {
        echo "error: $label failed; the end of $log.err:" >&2
        tail -n 5 "$log.err" >&2
        exit 1
    }
    echo "$label: done in $((SECONDS - start)) s; last step: $(grep -E '^[0-9]+(, |: )' "$log" | tail -n 1 | cut -d, -f1-3)"
}
