# Sourced by the shell tests (not a test itself: tests/run.sh runs only tests/test_*.sh):
#   . "$(dirname "$0")/lib.sh"       (tests/gpu/: . "$(dirname "$0")/../lib.sh")
# Sets $top (the repository's top directory) and defines:
#   enter_tmp, need_fashion_mnist, fashion_subset, fashion_seg      where a test runs, its data

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fashion_mnist=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}

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
