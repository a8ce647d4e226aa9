#!/bin/bash
# Run the tests and summarise.
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
# Environment:
#   TEST_FILTER   glob patterns (space- or comma-separated) matched against the test
#                 name, with or without its test_ prefix: TEST_FILTER='tat_* e2e_*'
#   TEST_KIND     c (the compiled programs only), sh (the scripts only) or all (default)
#   TEST_JOBS     tests run at once (default: the machine's cores); each test's lines
#                 are printed together when it ends
#   TEST_TIMEOUT  seconds each test may run (default 600)
#   VERBOSE       non-empty: echo the tests' other lines too
# Passed through to the tests: DARKNET, DARKNET_LIB, DARKNET_DIR, DARKNET_MPI.
set -u

TESTS_DIR=${TESTS_DIR:-$(cd "$(dirname "$0")" && pwd)}
TOP=$(cd "$TESTS_DIR/.." && pwd)
bin_dir=${1:-build/tests}
case $bin_dir in /*) ;; *) bin_dir=$TOP/$bin_dir ;; esac
timeout_s=${TEST_TIMEOUT:-600}
jobs=${TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
kind=${TEST_KIND:-all}
case $kind in c|sh|all) ;; *) echo "tests/run.sh: TEST_KIND must be c, sh or all, not '$kind'" >&2; exit 2 ;; esac
case $jobs in ''|*[!0-9]*|0) echo "tests/run.sh: TEST_JOBS must be a positive number, not '$jobs'" >&2; exit 2 ;; esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# selected <name>: 0 when TEST_FILTER is unset or one of its patterns matches
selected() {
    local pattern patterns
    [ -n "${TEST_FILTER:-}" ] || return 0
    IFS=', ' read -r -a patterns <<< "$TEST_FILTER"
    for pattern in "${patterns[@]}"; do
        # shellcheck disable=SC2053 # the pattern is a glob on purpose
        [[ $1 == $pattern || ${1#test_} == $pattern ]] && return 0
    done
    return 1
}

# run_one <index> <name> <command...>: the test's output to $work/<index>.out, and the
# runner's own verdict lines (exit status, missing binary) to $work/<index>.verdict
run_one() {
    local i=$1 name=$2 rc
    shift 2
    (cd "$TOP" && timeout "$timeout_s" "$@") > "$work/$i.out" 2>&1 < /dev/null
    rc=$?
    {
        if [ "$rc" -eq 124 ]; then
            echo "FAIL $name: timed out after ${timeout_s}s"
        elif [ "$rc" -gt 128 ]; then
            echo "FAIL $name: killed by signal $((rc - 128))"
        elif [ "$rc" -ne 0 ]; then
            echo "FAIL $name: exited with status $rc"
        fi
    } > "$work/$i.verdict"
}

passed=0 failed=0 skipped=0
# report <index>: echo and count a finished test's lines
report() {
    local i=$1 line
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in
        "PASS "*) passed=$((passed + 1)); echo "$line" ;;
        "FAIL "*) failed=$((failed + 1)); echo "$line" ;;
        "SKIP "*) skipped=$((skipped + 1)); echo "$line" ;;
        *) [ -z "${VERBOSE:-}" ] || echo "  $line" ;;
        esac
    done < "$work/$i.out"
    if [ -s "$work/$i.verdict" ]; then
        failed=$((failed + 1))
        cat "$work/$i.verdict"
        # the end of its other output, the likely explanation
        grep -vE '^(PASS|FAIL|SKIP) ' "$work/$i.out" | tail -n 15 | sed 's/^/  | /'
    fi
}

names=() programs=() kinds=()
add() { selected "$1" && names+=("$1") && programs+=("$2") && kinds+=("$3"); }
shopt -s nullglob
if [ "$kind" != sh ]; then
    for src in "$TESTS_DIR"/test_*.c; do
        name=$(basename "$src" .c)
        add "$name" "$bin_dir/$name" c
    done
fi
if [ "$kind" != c ]; then
    for script in "$TESTS_DIR"/test_*.sh; do
        add "$(basename "$script" .sh)" "$script" sh
    done
fi

# Start up to $jobs tests; report each as it ends (done files mark the ended ones).
running=0 next=0 reported=()
reap() {
    local i
    for i in "${!names[@]}"; do
        if [ -e "$work/$i.done" ] && [ -z "${reported[$i]:-}" ]; then
            reported[$i]=1
            running=$((running - 1))
            report "$i"
        fi
    done
}
while [ "$next" -lt "${#names[@]}" ]; do
    i=$next name=${names[$i]} program=${programs[$i]}
    next=$((next + 1))
    if [ "${kinds[$i]}" = sh ]; then
        set -- bash "$program"
    elif [ -x "$program" ]; then
        set -- "$program"
    else
        failed=$((failed + 1))
        echo "FAIL $name: no binary $program (did it compile?)"
        continue
    fi
    { run_one "$i" "$name" "$@"; touch "$work/$i.done"; } &
    running=$((running + 1))
    while [ "$running" -ge "$jobs" ]; do
        wait -n 2> /dev/null || sleep 0.1
        reap
    done
done
wait
reap

summary="$passed passed, $failed failed"
[ "$skipped" -eq 0 ] || summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]
