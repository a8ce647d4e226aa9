#!/bin/bash
# A short distillation run (2 iterations, small cfgs, teacher with a learned key, shared
# anchor embeddings) under valgrind --leak-check=full. Fails on any invalid read/write and on
# memory "definitely lost" whose allocation stack passes through the plugin or through
# parsing, loading or freeing a network (the teacher's path); other definite losses (Darknet's
# command code keeps its data-cfg options and label lists to the end) are listed as INFO.
# Needs DARKNET (a build without sanitizers), valgrind and the Fashion-MNIST package.
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
if ! command -v valgrind > /dev/null; then
    echo "SKIP valgrind_distill: no valgrind (make deps installs it)"
    exit 0
fi
if ldd "$DARKNET" 2> /dev/null | grep -q 'libasan\|libubsan'; then
    echo "SKIP valgrind_distill: $DARKNET is built with sanitizers"
    exit 0
fi
fashion_subset valgrind_distill 16
data_file > v.data
{ net_head batch=4 learning_rate=0.01 policy=constant max_batches=1; conv 8; pool; conv 8; pool; head_out; } > teacher.cfg
{ net_head batch=4 learning_rate=0.01 policy=constant max_batches=2; conv 4; pool; conv 4; pool
  printf '[tat_distill]\nteacher_layer=3\nteacher_channels=8\nkey=learned\ngrid=7,7\ngroups=7\n\n'
  printf '[anchor_distill]\nembeddings=-1\nanchors=7,7\n\n'
  head_out; } > student.cfg
"$DARKNET" classifier train v.data teacher.cfg -seed 1 > teacher.log 2>&1
[ -f backup/teacher.weights ] || { echo "FAIL valgrind_setup: $(tail -n 1 teacher.log)"; exit 0; }

# OMP_WAIT_POLICY and OPENBLAS_THREAD_TIMEOUT set: the start-up re-executes without them, and
# valgrind would follow only the first process (it does not trace children here)
OMP_WAIT_POLICY=passive OPENBLAS_THREAD_TIMEOUT=4 valgrind --leak-check=full --show-leak-kinds=definite --num-callers=30 --error-exitcode=99 \
    --errors-for-leak-kinds=none --log-file=vg.log \
    "$DARKNET" distill classifier train v.data student.cfg teacher.cfg backup/teacher.weights -seed 1 \
    > run.log 2>&1
rc=$?
if [ "$rc" -ne 0 ] || ! grep -q 'ERROR SUMMARY: 0 errors' vg.log; then
    echo "FAIL valgrind_distill_no_errors: exit $rc; $(grep -m1 -A3 'Invalid\|uninitialised' vg.log | tr '\n' ' ')"
else
    echo "PASS valgrind_distill_no_errors"
fi
# One record per "definitely lost" block: the record's lines up to the blank line.
awk '/definitely lost in loss record/ { rec = $0; inrec = 1; next }
     inrec && /^==[0-9]+== *$/ { print rec "\n"; inrec = 0; next }
     inrec { rec = rec "\n" $0 }' vg.log > records
ours=$(awk -v RS= '/distill_|tat_|attach_teacher|parse_network_cfg|load_network|load_weights|free_network|make_network/' records)
grep 'definitely lost:' vg.log | sed 's/^==[0-9]*== */INFO valgrind: /' >&2
if [ -n "$ours" ]; then
    echo "FAIL valgrind_no_leaks_on_our_paths: $(echo "$ours" | grep -m1 'definitely lost') $(echo "$ours" | grep -m3 ' by ' | sed 's/.*by 0x[0-9A-F]*: //' | tr '\n' ' ')"
else
    echo "PASS valgrind_no_leaks_on_our_paths"
fi
if [ -n "${SHOW_LEAKS:-}" ]; then cat records >&2; fi
