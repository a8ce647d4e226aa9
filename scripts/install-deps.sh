#!/bin/bash
# Install the Debian packages needed to build, test and run the demo.
# Quick no-op when everything is already installed (no apt-get update).
set -eu

# build: compilers/make, pkg-config, patch + xz for the Darknet source,
#   dpkg-dev (Debian source-package tools), CA certs
#   for the archive, OpenBLAS (cblas), oneDNN (the convolution backend) and OpenCV (OPENCV=1); libpng and
#   zlib for tools/ (the Fashion-MNIST converter);
# tests: python3 with torch/numpy compute reference values; torchvision: the ResNet
#   converter (tools/torchvision_to_darknet.py) and its exactness test;
# demo: the Fashion-MNIST data set; study: matplotlib draws its plots;
# distributed training (MPI=1): Open MPI (mpicc, mpirun).
pkgs="build-essential pkg-config dpkg-dev xz-utils patch ca-certificates
      libopenblas-dev libdnnl-dev libopencv-dev libpng-dev zlib1g-dev
      python3 python3-torch python3-torchvision python3-numpy python3-matplotlib
      dataset-fashion-mnist
      valgrind clang libclang-rt-14-dev
      libopenmpi-dev openmpi-bin"

missing=
for p in $pkgs; do
    case $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) in
    ii*) ;;
    *) missing="$missing $p" ;;
    esac
done
if [ -z "$missing" ]; then
    echo "install-deps: all packages already installed"
    exit 0
fi

if [ "$(id -u)" = 0 ]; then
    as_root=
elif command -v sudo > /dev/null; then
    as_root=sudo
else
    echo "install-deps: not root and no sudo; as root run: apt-get install --no-install-recommends$missing" >&2
    exit 1
fi
echo "install-deps: installing$missing"
$as_root apt-get update
# shellcheck disable=SC2086 # word splitting of the package list is intended
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
