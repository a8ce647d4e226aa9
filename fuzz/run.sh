#!/bin/bash
# Build the libFuzzer targets (fuzz/fuzz.mk), replay the saved regression inputs, then fuzz
# each target for FUZZ_SECONDS (default 60). A crash or sanitizer report fails the run; the
# input is left in build/fuzz/artifacts/ (copy it to fuzz/regressions/<target>/ once fixed).
#   fuzz/run.sh            (from the repo top, after `make fetch`; `make fuzz` does both)
# Needs clang and libclang-rt-14-dev (or the matching compiler-rt) for -fsanitize=fuzzer.
set -u
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
out=build/fuzz
command -v clang > /dev/null || { echo "fuzz: no clang (make deps installs it)" >&2; exit 1; }
make -s -j"$(nproc)" -f fuzz/fuzz.mk DN="${DARKNET_DIR:-darknet}" OUT=$out || exit 1

# The cfg target leaks the half-built network of every rejected cfg (Darknet exits there and
# has no unwinding), so leak checking is off; valgrind covers leaks on the real paths.
export ASAN_OPTIONS=detect_leaks=0
export UBSAN_OPTIONS=print_stacktrace=1
mkdir -p $out/artifacts
status=0
for target in cfg weights; do
    bin=$out/fuzz_$target
    corpus=$out/corpus-$target
    mkdir -p "$corpus"
    [ -d fuzz/corpus/$target ] && cp -n fuzz/corpus/$target/* "$corpus"/ 2> /dev/null
    if [ "$target" = weights ] && [ ! -f "$corpus/valid.weights" ]; then
        FUZZ_WRITE_SEED="$corpus/valid.weights" "$bin" > /dev/null 2>&1
    fi
    regressions=$(ls fuzz/regressions/$target/* 2> /dev/null)
    if [ -n "$regressions" ]; then
        if "$bin" -close_fd_mask=3 $regressions > $out/replay-$target.log 2>&1; then
            echo "fuzz: $target: $(echo $regressions | wc -w) regression inputs replayed, no crash"
        else
            echo "fuzz: $target: a regression input crashes again:"; tail -n 30 $out/replay-$target.log
            status=1
        fi
    fi
    # Every rejected cfg leaks its half-built network (Darknet exits there; the harness jumps
    # back instead), about 2 GB a minute: libFuzzer's default 2 GB RSS limit would report
    # that as an out-of-memory finding. The run is bounded by time instead.
    "$bin" -max_total_time="$seconds" -max_len=4096 -close_fd_mask=3 -print_final_stats=1 \
        -rss_limit_mb=$((4096 + 70 * seconds)) \
        -artifact_prefix=$out/artifacts/$target- "$corpus" > $out/fuzz-$target.log 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' $out/fuzz-$target.log | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' $out/fuzz-$target.log | tail -n 1)
    if [ "$rc" -ne 0 ]; then
        echo "fuzz: $target: FOUND A CRASH after ${runs:-?} runs:"
        grep -E 'ERROR|runtime error|SUMMARY|Test unit written|^ *#[0-9]' $out/fuzz-$target.log | head -n 25
        # a new finding fails the run unless FUZZ_NEW_FINDINGS=report (CI: a random new input
        # must not block unrelated work; it is printed, to be fixed and added to regressions/)
        [ "${FUZZ_NEW_FINDINGS:-fail}" = report ] || status=1
    else
        echo "fuzz: $target: ${seconds}s, ${runs:-?} inputs, $cov, corpus $(ls "$corpus" | wc -l) files, no crash"
    fi
done
exit $status
