# Sourced by the shell tests (not a test itself): a few real Fashion-MNIST images to train on.
# fashion_subset <test name> <train images>: leaves the caller in a new temporary directory
# (removed at exit) holding data/ (Darknet's classification layout: data/train.list,
# data/test.list, data/labels.txt) and an empty backup/. Prints SKIP and exits when the data
# set is not installed, FAIL and exits when the conversion fails.
fashion_subset() {
    local name=$1 limit=$2 top tool dataset
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    tool=${FASHION_TOOL:-$top/build/tools/fashion_mnist_to_darknet}
    dataset=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
    if [ ! -f "$dataset/train-images-idx3-ubyte.gz" ]; then
        echo "SKIP $name: no Fashion-MNIST in $dataset (make deps installs dataset-fashion-mnist)"
        exit 0
    fi
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    cd "$tmp" || exit 1
    "$tool" "$dataset" data --train-limit "$limit" > convert.log 2>&1 || {
        echo "FAIL ${name}_convert: $(tail -n 1 convert.log)"
        exit 0
    }
    mkdir -p backup
}
