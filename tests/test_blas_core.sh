#!/bin/bash
# BLAS kernel selection at start-up, through the binary (tat_layer/core/blas_core.h): the start-up
# line; the library's core is never generic on a CPU with AVX2; a user's OPENBLAS_CORETYPE
# wins; a library that picks a generic core is re-executed with a better one, once, even when
# it ignores OPENBLAS_CORETYPE. A generic choice is forced with a preloaded stand-in for
# openblas_get_corename (the kernels stay the library's own; only the name it reports moves).
# Needs DARKNET (the CPU binary, BLAS=1) and a C compiler.
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
enter_tmp
# a preloaded library comes before the sanitizer runtime in an ASan build: allow it
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

# run_train <out> [env assignments...]: a training command that stops at its missing cfg
run_train() {
    local out=$1
    shift
    env -u OPENBLAS_CORETYPE -u DISTILL_BLAS_LIBRARY_CORE "$@" \
        timeout 60 "$DARKNET" classifier train missing.data missing.cfg > "$out.out" 2> "$out"
    echo $? > "$out.rc"
}
blas_lines() { grep -c '^BLAS: ' "$1"; }
core_of() { sed -n 's/^BLAS: .*; core \([A-Za-z0-9]*\) (.*/\1/p' "$1" | head -n 1; }

run_train plain.err
if [ "$(blas_lines plain.err)" = 1 ] && grep -q '^BLAS: OpenBLAS .*; core [A-Za-z0-9]* (.*); [0-9]* threads$' plain.err; then
    echo "PASS blas_startup_line"
else
    echo "FAIL blas_startup_line: want one 'BLAS: <library>; core <name> (<how>); <n> threads' line; got: $(head -n 2 plain.err | tr '\n' ' ')"
fi

have_avx2=0
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && have_avx2=1
core=$(core_of plain.err)
if [ $have_avx2 = 0 ]; then
    echo "SKIP blas_core_not_generic: this CPU has no AVX2 + FMA"
else
    case $core in
    Haswell | Zen | SkylakeX | Cooperlake | SapphireRapids) echo "PASS blas_core_not_generic" ;;
    *) echo "FAIL blas_core_not_generic: core '$core' on a CPU with AVX2: $(grep '^BLAS' plain.err)" ;;
    esac
fi

run_train user.err OPENBLAS_CORETYPE=Prescott
if [ "$(core_of user.err)" = Prescott ] && grep -q 'your OPENBLAS_CORETYPE=Prescott' user.err; then
    echo "PASS blas_user_choice_wins"
else
    echo "FAIL blas_user_choice_wins: $(grep '^BLAS' user.err || head -n 1 user.err)"
fi

# stand-ins for the library's core name: one that honours OPENBLAS_CORETYPE as OpenBLAS's
# dynamic-arch builds do, one that ignores it (a build without dynamic arch)
cat > corename.c <<'C'
#include <stdlib.h>
char *openblas_get_corename(void)
{
    char *asked = getenv("OPENBLAS_CORETYPE");
#ifdef HONOURS_CORETYPE
    if (asked) return asked;
#endif
    (void)asked;
    return "Prescott";
}
C
if ! cc -shared -fPIC -DHONOURS_CORETYPE corename.c -o honours.so || ! cc -shared -fPIC corename.c -o ignores.so; then
    echo "FAIL blas_generic_core_replaced: cannot build the stand-in library"
    exit 0
fi
if [ $have_avx2 = 0 ]; then
    echo "SKIP blas_generic_core_replaced: this CPU has no AVX2 + FMA"
    echo "SKIP blas_reexec_once_when_ignored: this CPU has no AVX2 + FMA"
    exit 0
fi
want=Haswell
grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo && grep -qw avx512dq /proc/cpuinfo &&
    grep -qw avx512vl /proc/cpuinfo && want=SkylakeX

run_train honours.err LD_PRELOAD="$tmp/honours.so"
if [ "$(blas_lines honours.err)" = 1 ] && [ "$(core_of honours.err)" = "$want" ] &&
    grep -q 'set at start-up: the library picked the generic Prescott' honours.err && [ "$(cat honours.err.rc)" = 1 ]; then
    echo "PASS blas_generic_core_replaced"
else
    echo "FAIL blas_generic_core_replaced: want core $want set at start-up, exit 1; got exit $(cat honours.err.rc): $(grep '^BLAS' honours.err || head -n 1 honours.err)"
fi

run_train ignores.err LD_PRELOAD="$tmp/ignores.so"
rc=$(cat ignores.err.rc)
if [ "$rc" = 1 ] && [ "$(blas_lines ignores.err)" = 1 ] && grep -q "OPENBLAS_CORETYPE=$want set at start-up was not taken" ignores.err; then
    echo "PASS blas_reexec_once_when_ignored"
else
    echo "FAIL blas_reexec_once_when_ignored: exit $rc (124: it kept re-executing), $(blas_lines ignores.err) BLAS lines: $(grep '^BLAS' ignores.err | head -n 2 | tr '\n' ' ')"
fi
