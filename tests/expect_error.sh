# Sourced by the shell tests (not a test itself: tests/run.sh runs only tests/test_*.sh).
# expect_error <name> <words that must all appear in stderr> -- <command...>
#   PASS when the command exits 1 and its stderr holds every word; runs in the current directory
#   (out.log, err.log).
expect_error() {
    local name=$1 words=$2 rc w
    shift 3
    "$@" > out.log 2> err.log < /dev/null
    rc=$?
    if [ "$rc" -ne 1 ]; then
        echo "FAIL $name: exit status $rc (want 1); $(tail -n 1 err.log)"
        return
    fi
    for w in $words; do
        grep -qF -- "$w" err.log || { echo "FAIL $name: stderr lacks '$w': $(tail -n 1 err.log)"; return; }
    done
    echo "PASS $name"
}
