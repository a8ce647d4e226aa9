#!/bin/bash
# The GPU check, built on a machine with the CUDA toolkit (no GPU needed) and run on a bare GPU
# machine that has only the CUDA toolkit, the driver and Python's NVIDIA wheels (no network, no
# OpenBLAS, libpng or Open MPI):
#
#   scripts/gpu-check.sh prepare [DIR]   build the PORTABLE=1 GPU variants for sm_90 (+ PTX),
#                                        the GPU tests and benchmark, and pack into DIR
#                                        (default build/gpu-check, at most 60 MiB) the binaries,
#                                        a Fashion-MNIST subset, the test scripts and cfgs
#   scripts/gpu-check.sh libs DIR        every carried binary's ldd: only libraries the GPU
#                                        machine has (glibc, the toolkit's, the wheels') or DIR
#                                        carries; exit 1 otherwise
#   scripts/gpu-check.sh run DIR         on the GPU machine: preflight, then each stage under
#                                        its own limit (all under 8 minutes), one summary table
#   scripts/gpu-check.sh probe OUT       build only the preflight's device probe (DIR/bin/gpu_probe)
#   scripts/gpu-check.sh size DIR        KiB the folder carries (binaries unpacked from bin/*.xz not counted)
#
# run's exit status: 0 every stage passed or skipped, 1 a stage failed, 3 no CUDA device
# (the preflight's line says why; nothing else ran).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
max_mib=60

usage() {
    echo "usage: $0 prepare [DIR] | libs DIR | run DIR | probe OUT | size DIR" >&2
    exit 2
}

# ---- libraries -------------------------------------------------------------------------------
# What the GPU machine provides: glibc and the GCC runtime every Linux has, the CUDA toolkit's
# libraries, and the wheels' cuDNN and NCCL. Anything else must be in DIR/lib.
system_lib_re='^(linux-vdso\.so\.1|/lib64/ld-linux-x86-64\.so\.2|ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libmvec\.so\.1|libdl\.so\.2|librt\.so\.1|libpthread\.so\.0|libgcc_s\.so\.1|libstdc\+\+\.so\.6)$'
gpu_machine_lib_re='^(libcublas\.so\.13|libcublasLt\.so\.13|libcurand\.so\.10|libcudnn\.so\.9|libnccl\.so\.2)$'

carried_binaries() { find "$1/bin" -maxdepth 1 -type f -perm -u+x ! -name '*.xz' 2> /dev/null | sort; }

# The large binaries travel xz-compressed (bin/NAME.xz; OpenBLAS's kernels for every CPU make
# each about 28 MB): unpack DIR writes bin/NAME beside each, with xz or Python's lzma module
unpack() {
    local f out
    for f in "$1"/bin/*.xz; do
        [ -e "$f" ] || continue
        out=${f%.xz}
        [ -x "$out" ] && [ "$out" -nt "$f" ] && continue
        if command -v xz > /dev/null; then
            xz -dc "$f" > "$out.tmp"
        else
            python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$f" "$out.tmp"
        fi || { echo "gpu-check: cannot unpack $f"; rm -f "$out.tmp"; return 1; }
        chmod +x "$out.tmp" && mv "$out.tmp" "$out"
    done
}

# carried_kib DIR: what the folder carries, in KiB (not the binaries unpacked from bin/*.xz)
carried_kib() {
    local total unpacked=0 f
    total=$(du -sk "$1" | awk '{print $1}')
    for f in "$1"/bin/*.xz; do
        [ -e "${f%.xz}" ] && unpacked=$((unpacked + $(du -sk "${f%.xz}" | awk '{print $1}')))
    done
    echo $((total - unpacked))
}

# libs DIR: prints each binary's libraries; 1 when one is neither the GPU machine's nor carried
check_libs() {
    local dir=$1 bad=0 bin lib n=0
    for bin in $(carried_binaries "$dir"); do
        file -b "$bin" | grep -q '^ELF' || continue
        n=$((n + 1))
        for lib in $(ldd "$bin" 2> /dev/null | awk '{print $1}'); do
            if [[ $lib =~ $system_lib_re ]] || [[ $lib =~ $gpu_machine_lib_re ]] || [ -e "$dir/lib/$lib" ]; then
                continue
            fi
            echo "gpu-check: $bin needs $lib, which the GPU machine lacks and $dir/lib does not carry"
            bad=1
        done
        echo "libs: $(basename "$bin"): $(ldd "$bin" 2> /dev/null | awk '{print $1}' | grep -v -e vdso -e ld-linux | tr '\n' ' ')"
    done
    if [ "$n" -eq 0 ]; then
        echo "gpu-check: no binaries in $dir/bin"
        return 1
    fi
    return "$bad"
}

# ---- prepare ---------------------------------------------------------------------------------
prepare() {
    local dir=${1:-$top/build/gpu-check} jobs arch log
    jobs=$(nproc 2> /dev/null || echo 2)
    [ "$jobs" -gt 16 ] && jobs=16
    arch='-gencode arch=compute_90,code=[sm_90,compute_90]'
    mkdir -p "$top/build"
    log=$top/build/gpu-check-prepare.log
    : > "$log"
    cd "$top" || exit 1
    local cudnn
    for cudnn in 0 1; do
        echo "== build GPU=1 CUDNN=$cudnn PORTABLE=1 (sm_90 + PTX)"
        make -j"$jobs" build gpu-test-bins GPU=1 CUDNN=$cudnn PORTABLE=1 ARCH="$arch" >> "$log" 2>&1 || {
            tail -n 20 "$log"
            echo "gpu-check: prepare: the CUDNN=$cudnn build failed (log: $log)"
            exit 1
        }
    done
    # the tools convert Fashion-MNIST here; the run needs only the converter, linked statically
    make tools >> "$log" 2>&1 || { tail -n 5 "$log"; echo "gpu-check: prepare: make tools failed"; exit 1; }
    rm -rf "$dir.new" && mkdir -p "$dir.new/bin" "$dir.new/lib" "$dir.new/tests/gpu" "$dir.new/fashion-mnist" || exit 1
    cp build/gpu-portable/darknet "$dir.new/bin/darknet"
    cp build/gpu-cudnn-portable/darknet "$dir.new/bin/darknet-cudnn"
    cp build/gpu-portable-tests/test_gpu "$dir.new/bin/test_gpu"
    cp build/gpu-cudnn-portable-tests/test_gpu "$dir.new/bin/test_gpu-cudnn"
    cp build/bench/bench_gpu_portable "$dir.new/bin/bench_gpu"
    cc -O2 -Wall tools/fashion_mnist_to_darknet.c -o "$dir.new/bin/fashion_mnist_to_darknet" \
        $(pkg-config --cflags libpng 2> /dev/null) -l:libpng16.a -l:libz.a -lm >> "$log" 2>&1 || {
        echo "gpu-check: prepare: the static Fashion-MNIST converter did not link (log: $log)"
        exit 1
    }
    probe "$dir.new/bin/gpu_probe" >> "$log" 2>&1 || { echo "gpu-check: prepare: the device probe did not build (log: $log)"; exit 1; }
    # MPI + NCCL: the distributed build links Open MPI, which the GPU machine lacks; it travels
    # with its libraries when they can be gathered, else the NCCL stage says SKIP there
    if make -j"$jobs" build GPU=1 CUDNN=0 MPI=1 PORTABLE=1 ARCH="$arch" >> "$log" 2>&1; then
        cp build/gpu-mpi-portable/darknet "$dir.new/bin/darknet-mpi"
        carry_mpi "$dir.new" >> "$log" 2>&1
    else
        echo "gpu-check: prepare: no MPI GPU build (log: $log); the NCCL stage will SKIP"
    fi
    cp tests/lib.sh "$dir.new/tests/"
    cp tests/gpu/*.sh "$dir.new/tests/gpu/"
    cp scripts/gpu-check.sh "$dir.new/gpu-check.sh"
    fashion_subset "$dir.new/fashion-mnist" || exit 1
    git -C "$top" log -1 --format='%H %s' > "$dir.new/COMMIT" 2> /dev/null || true
    # the newest glibc symbol version the binaries need, and Open MPI's carried libraries: the
    # run's preflight compares them with the machine's
    for f in $(carried_binaries "$dir.new"); do objdump -T "$f" 2> /dev/null; done |
        grep -o 'GLIBC_2\.[0-9]*' | sort -t. -k2 -n -u | tail -n 1 | sed 's/GLIBC_//' > "$dir.new/GLIBC_NEEDED"
    for f in "$dir.new"/lib/*.so*; do objdump -T "$f" 2> /dev/null; done |
        grep -o 'GLIBC_2\.[0-9]*' | sort -t. -k2 -n -u | tail -n 1 | sed 's/GLIBC_//' > "$dir.new/GLIBC_NEEDED_MPI"
    echo "gpu-check: the binaries need glibc $(cat "$dir.new/GLIBC_NEEDED") or newer, the carried Open MPI $(cat "$dir.new/GLIBC_NEEDED_MPI")"
    check_libs "$dir.new" || { echo "gpu-check: prepare: a binary needs a library the GPU machine lacks"; exit 1; }
    local f
    for f in $(carried_binaries "$dir.new"); do
        [ "$(stat -c %s "$f")" -gt 4000000 ] && { xz -T0 -6 -c "$f" > "$f.xz" && rm "$f" || exit 1; }
    done
    local kib
    kib=$(carried_kib "$dir.new")
    if [ "$kib" -gt $((max_mib * 1024)) ]; then
        echo "gpu-check: prepare: $dir.new is $((kib / 1024)) MiB, over $max_mib MiB"
        exit 1
    fi
    rm -rf "$dir" && mv "$dir.new" "$dir"
    echo "gpu-check: prepared $dir: $((kib / 1024)).$(((kib % 1024) * 10 / 1024)) MiB ($kib KiB)"
    echo "gpu-check: on the GPU machine: $dir/gpu-check.sh run $dir"
}

# probe <out>: a tiny program (static CUDA runtime) saying whether a device is usable
probe() {
    local src
    src=$(mktemp --suffix=.c)
    cat > "$src" << 'EOF'
/* gpu_probe: exit 0 and one line per device when a CUDA device is usable, exit 3 otherwise */
#include <stdio.h>
#include <cuda_runtime.h>
int main(void)
{
    int n = 0, driver = 0, runtime = 0, i;
    cudaError_t e = cudaGetDeviceCount(&n);
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    if (driver) printf("driver: CUDA %d.%d; runtime: CUDA %d.%d\n", driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
    else printf("driver: none (no libcuda.so.1 loadable); runtime: CUDA %d.%d\n", runtime / 1000, runtime % 1000 / 10);
    if (e != cudaSuccess || n == 0) {
        printf("no CUDA device: %s\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return 3;
    }
    for (i = 0; i < n; ++i) {
        struct cudaDeviceProp p;
        size_t free_b = 0, total_b = 0;
        cudaGetDeviceProperties(&p, i);
        cudaSetDevice(i);
        cudaMemGetInfo(&free_b, &total_b);
        printf("device %d: %s, compute %d.%d, %d SMs, %.1f of %.1f GiB free\n", i, p.name, p.major, p.minor,
               p.multiProcessorCount, free_b / 1073741824.0, total_b / 1073741824.0);
    }
    return 0;
}
EOF
    cc -O2 -I/usr/local/cuda/include "$src" -o "$1" -L/usr/local/cuda/lib64 -lcudart_static -ldl -lrt -lpthread
    local rc=$?
    rm -f "$src"
    return "$rc"
}

# carry_mpi DIR: Open MPI's shared libraries next to the MPI binary, and those of its components
# (DIR/lib/openmpi3) that need nothing else: enough for a one-rank job started without mpirun
# (an isolated singleton), which is what a GPU machine without Open MPI can run
carry_mpi() {
    local dir=$1 lib path comp pkglib ok
    ldd "$dir/bin/darknet-mpi" | while read -r lib _ path _; do
        [[ $lib =~ $system_lib_re ]] || [[ $lib =~ $gpu_machine_lib_re ]] && continue
        [ -f "$path" ] && cp -L "$path" "$dir/lib/$lib"
    done
    pkglib=$(ompi_info --parsable --path pkglibdir 2> /dev/null | cut -d: -f3)
    [ -d "$pkglib" ] || { echo "gpu-check: prepare: Open MPI's components not found (ompi_info)"; return 1; }
    for lib in libnuma.so.1 "$pkglib"/../libmca_common_*.so.*; do
        path=$lib
        [ -e "$path" ] || path=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
        [ -n "$path" ] && [ -e "$path" ] && cp -L "$path" "$dir/lib/$(basename "$lib")"
    done
    mkdir -p "$dir/lib/openmpi3"
    for comp in "$pkglib"/*.so; do
        ok=1
        for lib in $(ldd "$comp" | awk '{print $1}'); do
            [[ $lib =~ $system_lib_re ]] || [ -e "$dir/lib/$lib" ] || ok=0
        done
        [ "$ok" = 1 ] && cp "$comp" "$dir/lib/openmpi3/"
    done
    echo "carried Open MPI: $(ls "$dir/lib" | wc -l) libraries, $(ls "$dir/lib/openmpi3" | wc -l) components"
}

# fashion_subset OUT: the first 3000 training and 1000 test images in the package's own format
fashion_subset() {
    local src=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
    if [ ! -f "$src/train-images-idx3-ubyte.gz" ]; then
        echo "gpu-check: prepare: no Fashion-MNIST in $src: the end-to-end GPU stages would SKIP; install dataset-fashion-mnist (make deps)"
        return 1
    fi
    python3 - "$src" "$1" << 'EOF'
import gzip, struct, sys
src, out = sys.argv[1], sys.argv[2]
for name, keep in (("train", 3000), ("t10k", 1000)):
    for kind, head in (("images-idx3", 16), ("labels-idx1", 8)):
        data = gzip.open(f"{src}/{name}-{kind}-ubyte.gz").read()
        magic, count = struct.unpack(">II", data[:8])
        per = (len(data) - head) // count
        body = data[head:head + keep * per]
        with gzip.open(f"{out}/{name}-{kind}-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", magic, keep) + data[8:head] + body)
EOF
}

# ---- run -------------------------------------------------------------------------------------
rows=()
npass=0
nfail=0
nskip=0
row() { # row <stage> <PASS|FAIL|SKIP|INFO> <detail>
    rows+=("| $1 | $2 | $3 |")
    case $2 in
        PASS) npass=$((npass + 1)) ;;
        FAIL) nfail=$((nfail + 1)) ;;
        SKIP) nskip=$((nskip + 1)) ;;
    esac
}

total_limit=470 # seconds for every stage together (the command limit is 10 minutes)
run_start=$(date +%s)

# stage <name> <seconds> <log> <command...>: runs it under its limit, shortened to what the
# total budget has left; 124 when stopped
stage() {
    local name=$1 limit=$2 log=$3 left rc start
    shift 3
    left=$((total_limit - ($(date +%s) - run_start)))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -le 5 ]; then
        echo "time budget spent" > "$log"
        return 125
    fi
    echo "== $name (limit $limit s)"
    start=$(date +%s)
    timeout -k 5 "$limit" "$@" > "$log" 2>&1
    rc=$?
    last_seconds=$(($(date +%s) - start))
    [ "$rc" -eq 124 ] && echo "gpu-check: $name stopped after $limit s (log: $log)"
    return "$rc"
}

# test_lines <stage> <log>: a row per PASS/FAIL/SKIP line of a test's output
test_lines() {
    local line
    while read -r line; do
        row "$1: $(echo "${line#* }" | cut -d: -f1)" "${line%% *}" "$(echo "${line#* }" | cut -s -d: -f2- | cut -c1-90)"
    done < <(grep -E '^(PASS|FAIL|SKIP) ' "$2")
}

summary() {
    echo
    echo "== summary ($(($(date +%s) - run_start)) s)"
    echo "| stage | result | detail |"
    echo "|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo "gpu-check: $npass passed, $nfail failed, $nskip skipped"
}

run() {
    local dir logs
    dir=$(cd "${1:?run DIR}" && pwd) || exit 2
    logs=${GPU_CHECK_LOGS:-$dir/logs}
    mkdir -p "$logs" || exit 1
    # the toolkit's libraries, then the wheels' (cuDNN, NCCL, cuBLAS), after what DIR carries
    local libpath=$dir/lib d py
    for d in "${CUDA_HOME:-/usr/local/cuda}/lib64" /usr/local/cuda/lib64 /usr/local/cuda/lib; do
        [ -d "$d" ] && [[ ":$libpath:" != *":$d:"* ]] && libpath=$libpath:$d
    done
    py=$(command -v python3 || command -v python)
    if [ -n "$py" ]; then
        for d in $("$py" -c 'import glob, os, site, sys
paths = site.getsitepackages() + [site.getusersitepackages()] + sys.path
print("\n".join(sorted({d for p in paths for d in glob.glob(os.path.join(p, "nvidia", "*", "lib"))})))' 2> /dev/null); do
            libpath=$libpath:$d
        done
    fi
    export LD_LIBRARY_PATH=$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

    unpack "$dir" || exit 1
    echo "== preflight"
    if ! "$dir/bin/gpu_probe" > "$logs/preflight.log" 2>&1; then
        cat "$logs/preflight.log"
        local smi="not installed"
        command -v nvidia-smi > /dev/null && smi=$(nvidia-smi -L 2>&1 | head -n 1)
        echo "gpu-check: no CUDA device visible: $(grep -m1 '^no CUDA device' "$logs/preflight.log" | sed 's/^no CUDA device: //'); $(head -n 1 "$logs/preflight.log"); nvidia-smi: $smi"
        exit 3
    fi
    cat "$logs/preflight.log"
    row "preflight: device" PASS "$(grep -m1 '^device 0' "$logs/preflight.log" | cut -c1-90)"
    local glibc need
    glibc=$(getconf GNU_LIBC_VERSION 2> /dev/null | awk '{print $2}')
    need=$(cat "$dir/GLIBC_NEEDED" 2> /dev/null)
    if [ -n "$need" ] && [ -n "$glibc" ] && [ "$(printf '%s\n%s\n' "$need" "$glibc" | sort -V | head -n 1)" != "$need" ]; then
        row "preflight: glibc" FAIL "this machine has glibc $glibc, the binaries need $need or newer (prepare on an older distribution)"
    else
        row "preflight: glibc" PASS "${glibc:-unknown} (the binaries need ${need:-?})"
    fi
    row "preflight: driver" INFO "$(head -n 1 "$logs/preflight.log"); nvidia-smi: $(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2> /dev/null | head -n 1)"
    local lib where
    for lib in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcudnn.so.9 libnccl.so.2; do
        # the first on the search path, as the loader takes it; then the system's cache
        where=
        for d in ${LD_LIBRARY_PATH//:/ }; do
            [ -e "$d/$lib" ] && { where=$d/$lib; break; }
        done
        [ -n "$where" ] || where=$(ldconfig -p 2> /dev/null | awk -v l="$lib" '$1 == l {print $NF; exit}')
        if [ -n "$where" ]; then
            row "preflight: $lib" PASS "$where"
        else
            row "preflight: $lib" FAIL "not found in $LD_LIBRARY_PATH"
        fi
    done
    local bin missing usable=()
    for bin in $(carried_binaries "$dir"); do
        missing=$(ldd "$bin" 2>&1 | awk '/not found/ {print $1}' | tr '\n' ' ')
        if [ -n "$missing" ]; then
            row "preflight: $(basename "$bin")" FAIL "unresolved: $missing"
        else
            usable+=("$(basename "$bin")")
        fi
    done
    row "preflight: binaries resolve" INFO "${usable[*]}"
    have() { [[ " ${usable[*]} " == *" $1 "* ]]; }

    # the GPU tests: kernels, embeddings, terms and every layer type against the CPU (TF32 off)
    local v
    for v in "" -cudnn; do
        if ! have "test_gpu$v"; then
            row "test_gpu$v" SKIP "binary missing or its libraries unresolved"
            continue
        fi
        (cd "$logs" && stage "test_gpu$v" 75 "$logs/test_gpu$v.log" "$dir/bin/test_gpu$v")
        local rc=$?
        local np nf
        np=$(grep -c '^PASS ' "$logs/test_gpu$v.log")
        nf=$(grep -c '^FAIL ' "$logs/test_gpu$v.log")
        if [ "$rc" -eq 125 ]; then
            row "test_gpu$v" SKIP "the $total_limit s for all stages were spent"
        elif [ "$rc" -eq 0 ] && [ "$nf" -eq 0 ] && [ "$np" -gt 0 ]; then
            row "test_gpu$v" PASS "$np checks passed"
        else
            row "test_gpu$v" FAIL "exit $rc, $np passed, $nf failed (logs/test_gpu$v.log): $(grep -m1 '^FAIL ' "$logs/test_gpu$v.log" | cut -c1-70)"
        fi
    done
    if have test_gpu-cudnn; then
        (cd "$logs" && stage "default math" 30 "$logs/default-math.log" "$dir/bin/test_gpu-cudnn" --default-math)
        row "default math (TF32), cuDNN" INFO "largest relative error $(grep -o 'relative error [0-9.e+-]*' "$logs/default-math.log" | awk '{print $3}' | sort -g | tail -n 1)"
    fi

    # a distillation of each type on the device (TaT + anchors; FitNet + KD) with real images
    local fm=(FASHION_MNIST_DIR="$dir/fashion-mnist" FASHION_TOOL="$dir/bin/fashion_mnist_to_darknet")
    if ! have darknet; then
        row "distillations" SKIP "bin/darknet missing or its libraries unresolved"
    elif [ ! -f "$dir/fashion-mnist/train-images-idx3-ubyte.gz" ]; then
        row "distillations" FAIL "no Fashion-MNIST subset in $dir/fashion-mnist: prepare carries it"
    else
        stage distillations 110 "$logs/distill.log" env "${fm[@]}" DARKNET="$dir/bin/darknet" bash "$dir/tests/gpu/test_gpu_distill.sh"
        local rc=$?
        test_lines distill "$logs/distill.log"
        if [ "$rc" -eq 125 ]; then
            row distillations SKIP "the $total_limit s for all stages were spent"
        elif ! grep -q '^PASS ' "$logs/distill.log"; then row distillations FAIL "exit $rc, no PASS line (logs/distill.log): $(tail -n 1 "$logs/distill.log")"
        fi
    fi

    # distributed training over NCCL on one rank, compared with the same run without MPI
    local need_mpi
    need_mpi=$(cat "$dir/GLIBC_NEEDED_MPI" 2> /dev/null)
    if [ -n "$need_mpi" ] && [ -n "$glibc" ] && ! command -v mpirun > /dev/null &&
        [ "$(printf '%s\n%s\n' "$need_mpi" "$glibc" | sort -V | head -n 1)" != "$need_mpi" ]; then
        row "NCCL" SKIP "the carried Open MPI needs glibc $need_mpi, this machine has $glibc, and no mpirun is installed"
    elif ! have darknet-mpi; then
        row "NCCL" SKIP "no MPI GPU build carried, or Open MPI's libraries unresolved here"
    elif [ ! -f "$dir/fashion-mnist/train-images-idx3-ubyte.gz" ]; then
        row "NCCL" FAIL "no Fashion-MNIST subset in $dir/fashion-mnist"
    else
        # without Open MPI installed: one rank as an isolated singleton on the carried components
        local singleton=()
        command -v mpirun > /dev/null ||
            singleton=(MPI_SINGLETON=1 OMPI_MCA_ess_singleton_isolated=1 OMPI_MCA_mca_base_component_path="$dir/lib/openmpi3")
        stage NCCL 80 "$logs/nccl.log" env "${fm[@]}" "${singleton[@]}" DARKNET="$dir/bin/darknet" \
            DARKNET_MPI="$dir/bin/darknet-mpi" bash "$dir/tests/gpu/test_gpu_distributed.sh"
        local rc=$?
        test_lines nccl "$logs/nccl.log"
        if [ "$rc" -eq 125 ]; then
            row NCCL SKIP "the $total_limit s for all stages were spent"
        elif ! grep -qE '^(PASS|SKIP) ' "$logs/nccl.log"; then row NCCL FAIL "exit $rc, no result line (logs/nccl.log): $(tail -n 1 "$logs/nccl.log")"
        fi
    fi

    # the benchmark at the paper's settings, with the layer's own attention choice
    if ! have bench_gpu; then
        row benchmark SKIP "bin/bench_gpu missing or its libraries unresolved"
    elif stage benchmark 80 "$logs/bench.log" "$dir/bin/bench_gpu" -r 5; then
        local line
        while read -r line; do
            case $line in
                gpu*ms/image*) set -- $line; row "bench $2 (batch $4)" INFO "$5 ms/image, $(echo "$line" | sed 's/.*(\(.*\))/\1/')" ;;
                gpu*ms/step*) set -- $line; row "bench $2 $3" INFO "$(echo "$line" | cut -d' ' -f4- | tr -s ' ' | cut -c1-90)" ;;
            esac
        done < "$logs/bench.log"
        row benchmark PASS "$(grep -c 'ms/image' "$logs/bench.log") settings"
    elif [ "$(tail -n 1 "$logs/bench.log")" = "time budget spent" ]; then
        row benchmark SKIP "the $total_limit s for all stages were spent"
    else
        row benchmark FAIL "stopped or failed (logs/bench.log): $(tail -n 1 "$logs/bench.log")"
    fi
    summary
    [ "$nfail" -eq 0 ]
}

case ${1:-} in
    prepare) shift; prepare "$@" ;;
    libs) [ $# -eq 2 ] || usage; unpack "$2" && check_libs "$2" ;;
    size) [ $# -eq 2 ] || usage; carried_kib "$2" ;;
    run) [ $# -eq 2 ] || usage; run "$2" ;;
    probe) [ $# -eq 2 ] || usage; probe "$2" ;;
    *) usage ;;
esac
