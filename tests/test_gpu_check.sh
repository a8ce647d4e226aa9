#!/bin/bash
# scripts/gpu-check.sh on this machine, no GPU needed:
# - the preflight without a usable device (CUDA_VISIBLE_DEVICES=-1 hides any): one line saying
#   so and exit status 3, nothing else run;
# - `libs` accepts a binary needing only glibc, refuses one needing libpng (which the GPU machine
#   lacks), naming it, and accepts it once the folder carries the library;
# - a folder made by `gpu-check.sh prepare` (build/gpu-check, when there): every binary the run
#   needs is there (the large ones xz-compressed), its ldd (unpacked) lists only the GPU machine's
#   libraries or the folder's, and the folder carries at most 60 MiB.
# Without nvcc / the CUDA runtime's static library: one SKIP line.
set -u
. "$(dirname "$0")/lib.sh"
check=$top/scripts/gpu-check.sh
if [ ! -f /usr/local/cuda/lib64/libcudart_static.a ]; then
    echo "SKIP gpu_check: no CUDA toolkit (/usr/local/cuda/lib64/libcudart_static.a)"
    exit 0
fi
enter_tmp
mkdir -p dir/bin dir/lib
if ! "$check" probe dir/bin/gpu_probe > probe.log 2>&1; then
    echo "FAIL gpu_check_probe_builds: $(tail -n 1 probe.log)"
    exit 0
fi
CUDA_VISIBLE_DEVICES=-1 "$check" run dir > run.log 2>&1
rc=$?
if [ "$rc" -eq 3 ] && grep -q '^gpu-check: no CUDA device visible: ' run.log && ! grep -q '^== summary' run.log; then
    echo "PASS gpu_check_no_device_exit_3"
else
    echo "FAIL gpu_check_no_device_exit_3: exit $rc (want 3), $(tail -n 1 run.log)"
fi

if "$check" libs dir > libs.log 2>&1; then
    echo "PASS gpu_check_libs_glibc_only"
else
    echo "FAIL gpu_check_libs_glibc_only: $(head -n 1 libs.log)"
fi
printf '#include <png.h>\nint main(void) { return png_access_version_number() == 0; }\n' > png.c
if cc png.c -o dir/bin/needs_png $(pkg-config --cflags --libs libpng 2> /dev/null || echo -lpng) 2> cc.log; then
    "$check" libs dir > libs2.log 2>&1
    rc=$?
    if [ "$rc" -ne 0 ] && grep -q 'needs_png needs libpng16\.so\.16, which the GPU machine lacks' libs2.log; then
        echo "PASS gpu_check_libs_refuses_libpng"
    else
        echo "FAIL gpu_check_libs_refuses_libpng: exit $rc; $(head -n 1 libs2.log)"
    fi
    cp -L "$(ldd dir/bin/needs_png | awk '$1 == "libpng16.so.16" {print $3}')" dir/lib/
    for lib in $(ldd dir/bin/needs_png | awk '$1 == "libz.so.1" {print $3}'); do cp -L "$lib" dir/lib/; done
    if "$check" libs dir > libs3.log 2>&1; then
        echo "PASS gpu_check_libs_carried_library"
    else
        echo "FAIL gpu_check_libs_carried_library: $(head -n 1 libs3.log)"
    fi
else
    echo "SKIP gpu_check_libs_refuses_libpng: no libpng to link a test binary ($(tail -n 1 cc.log))"
fi

prepared=${GPU_CHECK_DIR:-$top/build/gpu-check}
if [ ! -d "$prepared" ]; then
    echo "SKIP gpu_check_prepared: no $prepared (scripts/gpu-check.sh prepare makes it)"
    exit 0
fi
missing=
for f in bin/darknet.xz bin/darknet-cudnn.xz bin/test_gpu.xz bin/test_gpu-cudnn.xz bin/bench_gpu.xz bin/gpu_probe \
    bin/fashion_mnist_to_darknet gpu-check.sh GLIBC_NEEDED tests/lib.sh tests/gpu/test_gpu_distill.sh \
    tests/gpu/test_gpu_distributed.sh fashion-mnist/train-images-idx3-ubyte.gz fashion-mnist/t10k-labels-idx1-ubyte.gz; do
    [ -e "$prepared/$f" ] || missing="$missing $f"
done
if [ -z "$missing" ]; then echo "PASS gpu_check_prepared_complete"; else echo "FAIL gpu_check_prepared_complete: missing$missing"; fi
if "$check" libs "$prepared" > libs4.log 2>&1; then
    echo "PASS gpu_check_prepared_libs"
else
    echo "FAIL gpu_check_prepared_libs: $(grep -m1 '^gpu-check' libs4.log)"
fi
kib=$("$check" size "$prepared")
if [ -n "$kib" ] && [ "$kib" -le $((60 * 1024)) ]; then
    echo "PASS gpu_check_prepared_size"
else
    echo "FAIL gpu_check_prepared_size: $kib KiB, over 60 MiB"
fi
echo "INFO gpu_check prepared folder: $kib KiB" >&2
