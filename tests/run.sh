#!/bin/bash
# Run every test and summarise.
#
#   tests/run.sh [BIN_DIR]     (run from anywhere; tests run from the repo top)
#
# Tests are the compiled tests/test_*.c programs (expected as BIN_DIR/test_*,
# default build/tests) and the tests/test_*.sh scripts. Each prints lines
#   PASS <name> | FAIL <name>: <reason> | SKIP <name>: <reason>
# which are echoed and counted. A test that exits non-zero (or is killed), or a
# test_*.c without a binary (it did not compile), adds one FAIL of its own.
# Last line: "N passed, N failed[, N skipped]"; exit status 1 if anything failed.
#
# Environment passed through to tests: DARKNET, DARKNET_LIB, DARKNET_DIR.
# TEST_TIMEOUT (seconds, default 600) bounds each test.
set -u

TESTS_DIR=${TESTS_DIR:-$(cd "$(dirname "$0")" && pwd)}
TOP=$(cd "$TESTS_DIR/.." && pwd)
bin_dir=${1:-build/tests}
case $bin_dir in /*) ;; *) bin_dir=$TOP/$bin_dir ;; esac
timeout_s=${TEST_TIMEOUT:-600}

passed=0 failed=0 skipped=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

run_one() { # run_one <name> <command...>
    local name=$1 rc line
    shift
    (cd "$TOP" && timeout "$timeout_s" "$@") > "$out" 2>&1 < /dev/null
    rc=$?
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in
        "PASS "*) passed=$((passed + 1)); echo "$line" ;;
        "FAIL "*) failed=$((failed + 1)); echo "$line" ;;
        "SKIP "*) skipped=$((skipped + 1)); echo "$line" ;;
        *) [ -z "${VERBOSE:-}" ] || echo "  $line" ;;
        esac
    done < "$out"
    if [ "$rc" -ne 0 ]; then
        failed=$((failed + 1))
        if [ "$rc" -eq 124 ]; then
            echo "FAIL $name: timed out after ${timeout_s}s"
        elif [ "$rc" -gt 128 ]; then
            echo "FAIL $name: killed by signal $((rc - 128))"
        else
            echo "FAIL $name: exited with status $rc"
        fi
        # Show the end of its other output, the likely explanation.
        grep -vE '^(PASS|FAIL|SKIP) ' "$out" | tail -n 15 | sed 's/^/  | /'
    fi
}

shopt -s nullglob
for src in "$TESTS_DIR"/test_*.c; do
    name=$(basename "$src" .c)
    if [ -x "$bin_dir/$name" ]; then
        run_one "$name" "$bin_dir/$name"
    else
        failed=$((failed + 1))
        echo "FAIL $name: no binary $bin_dir/$name (did it compile?)"
    fi
done
for script in "$TESTS_DIR"/test_*.sh; do
    run_one "$(basename "$script" .sh)" bash "$script"
done

summary="$passed passed, $failed failed"
[ "$skipped" -eq 0 ] || summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]
