#!/bin/bash
# Prints up to two OpenBLAS cores (kernel sets) that this CPU can run and that differ from the
# one the library runs here as the environment stands, so that the numeric tests can be run
# again under kernels with other summation orders (make test-blas-cores).
#   scripts/other-blas-cores.sh        e.g. "Prescott Haswell" on an AVX-512 CPU that runs SkylakeX
set -eu
own=${OPENBLAS_CORETYPE:-}
if [ -z "$own" ]; then
    own=$(python3 -c '
import ctypes, ctypes.util
lib = ctypes.CDLL(ctypes.util.find_library("openblas") or "libopenblas.so.0")
lib.openblas_get_corename.restype = ctypes.c_char_p
print(lib.openblas_get_corename().decode())' 2> /dev/null || echo unknown)
fi
flags=$(grep -m1 '^flags' /proc/cpuinfo 2> /dev/null || true)
has() { case " $flags " in *" $1 "*) return 0 ;; esac; return 1; }
# generic SSE3 first: the kernel a CPU newer than the library falls back to
candidates=Prescott
has avx && candidates="$candidates Sandybridge"
has avx2 && has fma && candidates="$candidates Haswell"
has avx512f && has avx512bw && has avx512vl && has avx512dq && candidates="$candidates SkylakeX"
picked=()
for core in $candidates; do
    [ "${core,,}" = "${own,,}" ] && continue
    picked+=("$core")
done
# keep the generic core and the widest other one
if [ "${#picked[@]}" -gt 2 ]; then picked=("${picked[0]}" "${picked[-1]}"); fi
echo "${picked[*]}"
