#!/bin/bash
# Checks tests/run.sh itself: runs it on a temporary set of fake tests whose
# outcomes are known and compares its counts, echoed lines and exit status.
set -u
# the selection of the run that started this one must not reach the fake runs
unset TEST_FILTER TEST_KIND TEST_JOBS
. "$(dirname "$0")/lib.sh"
runner=$top/tests/run.sh
enter_tmp

# run_case <case> <expected last line> <expected status: 0|nonzero>
# Fake tests are whatever was put into $tmp/<case>/ before the call.
run_case() {
    local dir=$tmp/$1 want=$2 want_rc=$3 got rc
    got=$(TESTS_DIR=$dir/tests TEST_TIMEOUT=20 "$runner" "$dir/bin" 2>&1)
    rc=$?
    printf '%s\n' "$got" > "$dir/output"
    if [ "$(printf '%s\n' "$got" | tail -n1)" != "$want" ]; then
        echo "FAIL runner_$1: last line '$(printf '%s\n' "$got" | tail -n1)', expected '$want'"
    elif { [ "$want_rc" = 0 ] && [ "$rc" -ne 0 ]; } || { [ "$want_rc" != 0 ] && [ "$rc" -eq 0 ]; }; then
        echo "FAIL runner_$1: exit status $rc, expected $want_rc"
    else
        echo "PASS runner_$1"
    fi
}
# expect_line <case> <exact line the runner must have printed>
nline=0
expect_line() {
    nline=$((nline + 1))
    if grep -qxF -- "$2" "$tmp/$1/output"; then echo "PASS runner_$1_line$nline"
    else echo "FAIL runner_$1_line$nline: missing '$2'"; fi
}
mk() { mkdir -p "$tmp/$1/tests" "$tmp/$1/bin"; cat > "$tmp/$1/tests/$2"; }

# All passing, with noise that must not be counted.
mk allpass test_a.sh <<'EOF'
echo "PASS a1"
echo "PASSWORD is not a result"
echo "  PASS indented is not a result"
echo "PASS a2"
EOF
run_case allpass "2 passed, 0 failed" 0

# FAIL and SKIP lines, and a non-zero exit that adds one more failure.
mk mixed test_b.sh <<'EOF'
echo "PASS b1"
echo "FAIL b2: wrong value"
echo "SKIP b3: no GPU"
exit 3
EOF
run_case mixed "1 passed, 2 failed, 1 skipped" nonzero
expect_line mixed "FAIL b2: wrong value"
expect_line mixed "FAIL test_b: exited with status 3"

# A killed test counts as failed even after printing PASS.
mk killed test_c.sh <<'EOF'
echo "PASS c1"
kill -9 $$
EOF
run_case killed "1 passed, 1 failed" nonzero
expect_line killed "FAIL test_c: killed by signal 9"

# Compiled tests: a binary that passes, and a source whose binary is missing.
mk compiled test_d.c < /dev/null
mk compiled test_e.c < /dev/null
printf '#!/bin/sh\necho "PASS d1"\n' > "$tmp/compiled/bin/test_d"
chmod +x "$tmp/compiled/bin/test_d"
run_case compiled "1 passed, 1 failed" nonzero
expect_line compiled "FAIL test_e: no binary $tmp/compiled/bin/test_e (did it compile?)"

# Tests run from the top of the tree that holds tests/.
mk cwd test_f.sh <<'EOF'
if [ -d tests ] && [ -f tests/test_f.sh ]; then echo "PASS f"; else echo "FAIL f: cwd is $PWD"; fi
EOF
run_case cwd "1 passed, 0 failed" 0

# No tests at all.
mkdir -p "$tmp/empty/tests" "$tmp/empty/bin"
run_case empty "0 passed, 0 failed" 0

# TEST_FILTER picks tests by name, with or without the test_ prefix; TEST_KIND by kind.
mk filter test_keep_a.sh <<'EOF2'
echo "PASS keep_a"
EOF2
mk filter test_drop_b.sh <<'EOF2'
echo "FAIL drop_b: should not have run"
EOF2
mk filter test_keep_c.c < /dev/null
printf '#!/bin/sh\necho "PASS keep_c"\n' > "$tmp/filter/bin/test_keep_c"
chmod +x "$tmp/filter/bin/test_keep_c"
TEST_FILTER='keep_*' run_case filter "2 passed, 0 failed" 0
TEST_FILTER='test_keep_a,nothing' run_case filter "1 passed, 0 failed" 0
TEST_KIND=c run_case filter "1 passed, 0 failed" 0

# Tests run side by side: every line of every test is counted once, whatever order they end in.
for t in 1 2 3 4 5; do
    mk parallel "test_p$t.sh" <<EOF2
sleep 0.$((6 - t))
echo "PASS p${t}a"
echo "PASS p${t}b"
EOF2
done
TEST_JOBS=3 run_case parallel "10 passed, 0 failed" 0
