#!/bin/bash
# A short end-to-end distillation on real Fashion-MNIST images: train a small teacher, distill a
# smaller student with [tat_distill] + [anchor_distill] (shared embeddings), and check that the
# distillation loss falls, that -seed repeats a run exactly, that evaluation works, and that the
# exported student (no distillation layers) predicts exactly as the distill cfg does.
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
fashion_subset e2e 3000
head -n 1000 data/test.list > test.list
data_file valid=test.list top=2 > fm.data

{ net_head max_batches=150; conv 16 3; pool; conv 32 3; pool; head_out; } > teacher.cfg
# student: layers 0 conv, 1 pool, 2 conv, 3 pool (7x7x8, distilled), 4-5 distill, 6 conv, 7 avgpool, 8 softmax
{ net_head max_batches=80; conv 4 3; pool; conv 8 3; pool
  printf '[tat_distill]\nfrom=-1\nteacher_layer=3\nteacher_channels=32\nsize=1\nkey=learned\ngrid=1,1\nbn=batch\nloss_weight=2\n\n'
  printf '[anchor_distill]\nembeddings=-1\nanchors=3,3\nloss_weight=1\n\n'
  head_out; } > student-tat.cfg

"$DARKNET" classifier train fm.data teacher.cfg > teacher.log 2>&1
if [ ! -f backup/teacher.weights ]; then
    echo "FAIL e2e_teacher_trains: no backup/teacher.weights; $(tail -n 2 teacher.log | tr '\n' ' ')"
    exit 0
fi

distill() { # distill <log>
    "$DARKNET" distill classifier train fm.data student-tat.cfg teacher.cfg backup/teacher.weights -seed 7 > "$1" 2> "$1.err"
}
distill run1.log; rc1=$?
cp backup/student-tat.weights run1.weights 2> /dev/null
distill run2.log; rc2=$?
if [ "$rc1" -ne 0 ] || [ "$rc2" -ne 0 ] || [ ! -f run1.weights ]; then
    echo "FAIL e2e_distill_runs: exit $rc1/$rc2; $(tail -n 2 run1.log.err | tr '\n' ' ')"
    exit 0
fi
echo "PASS e2e_distill_runs"

# "distill: tat_distill[4] 1.234, 1.300 avg; anchor_distill[5] ..." -> the tat_distill loss
distill_losses run1.log > losses
n=$(wc -l < losses)
first=$(head -n 10 losses | mean)
last=$(tail -n 10 losses | mean)
echo "INFO tat_distill loss: mean of the first 10 of $n iterations $first, of the last 10 $last" >&2
if [ "$n" -eq 80 ] && awk -v a="$first" -v b="$last" 'BEGIN {exit !(b < 0.7 * a)}'; then
    echo "PASS e2e_distill_loss_falls"
else
    echo "FAIL e2e_distill_loss_falls: $n iterations, first-10 mean $first, last-10 mean $last (want last < 0.7 first)"
fi
grep -q '^distill: anchor_distill\|; anchor_distill\[' run1.log && echo "PASS e2e_anchor_term_reported" ||
    echo "FAIL e2e_anchor_term_reported: no anchor_distill term in the progress lines"
grep -q '^distill: [0-9]* extra learned parameters' run1.log && echo "PASS e2e_startup_cost_line" ||
    echo "FAIL e2e_startup_cost_line: no parameter/FLOPs line"

# Same seed, same run: every loss the two runs printed is identical (timings aside).
if [ -n "$(losses_of run1.log)" ] && [ "$(losses_of run1.log)" = "$(losses_of run2.log)" ] &&
    cmp -s run1.weights backup/student-tat.weights; then
    echo "PASS e2e_seed_reproducible"
else
    echo "FAIL e2e_seed_reproducible: the two -seed 7 runs differ: $(diff <(losses_of run1.log) <(losses_of run2.log) | head -n 3 | tr '\n' ' ')"
fi
# ... also under load, at the shipped Fashion-MNIST sizes (the TaT blocks are then large enough
# for OpenBLAS to use its own threads): one run, then two at once, same weights.
sed 's/^max_batches=.*/max_batches=5/' "$top/cfg/fashion-teacher.cfg" > ft.cfg
sed 's/^max_batches=.*/max_batches=20/' "$top/cfg/fashion-student-tat.cfg" > fs.cfg
"$DARKNET" classifier train fm.data ft.cfg > ft.log 2>&1
for p in par0 par1 par2; do
    mkdir -p "$p"
    sed "s|^backup=backup|backup=$p|" fm.data > "$p.data"
done
par() { "$DARKNET" distill classifier train "$1.data" fs.cfg ft.cfg backup/ft.weights -seed 3 > "$1.log" 2>&1; }
par par0
par par1 & par par2 &
wait
if [ -f par0/fs.weights ] && cmp -s par0/fs.weights par1/fs.weights && cmp -s par0/fs.weights par2/fs.weights; then
    echo "PASS e2e_seed_reproducible_under_load"
else
    echo "FAIL e2e_seed_reproducible_under_load: two -seed 3 runs at once wrote other weights than one run alone; $(tail -n 1 par1.log)"
fi

# Evaluation, with the distill command and with the exported plain student.
valid() { "$@" 2> /dev/null | tail -n 1; }
v_distill=$(valid "$DARKNET" distill classifier valid fm.data student-tat.cfg run1.weights)
"$DARKNET" distill export student-tat.cfg run1.weights student.cfg student.weights > export.log 2>&1
v_plain=$(valid "$DARKNET" classifier valid fm.data student.cfg student.weights)
echo "INFO valid (distill cfg): $v_distill | (exported): $v_plain" >&2
case $v_distill in
*"top 1: "*) echo "PASS e2e_valid_runs" ;;
*) echo "FAIL e2e_valid_runs: last line '$v_distill'" ;;
esac
if grep -q 'tat_distill\|anchor_distill' student.cfg 2> /dev/null; then
    echo "FAIL e2e_export_drops_distill_layers: student.cfg still has them"
elif [ -n "$v_plain" ] && [ "$v_plain" = "$v_distill" ]; then
    echo "PASS e2e_export_same_predictions"
else
    echo "FAIL e2e_export_same_predictions: '$v_plain' vs '$v_distill'; $(tail -n 1 export.log)"
fi

# Attention maps: one panel per student position, each row of softmax weights sums to 1.
img=$(head -n 1 test.list)
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{print $3 * 256 + $4 "x" $7 * 256 + $8}'; }
"$DARKNET" distill attention student-tat.cfg run1.weights teacher.cfg backup/teacher.weights "$img" att.png > att.log 2> att.err
sums=$(sed -n 's/.*drawn weights sum \([0-9.]*\);.*/\1/p' att.log | sort -u | tr '\n' ' ')
if [ -f att.png ] && [ "$(png_size att.png)" = 684x224 ] && [ "$sums" = "1.0000 " ]; then
    echo "PASS e2e_attention_map"
else
    echo "FAIL e2e_attention_map: png $(png_size att.png 2> /dev/null), weight sums '$sums'; $(tail -n 1 att.err)"
fi
# anchors 3,3 on the 7x7 map: 2x2 windows, row and column 6 take no part
"$DARKNET" distill attention student-tat.cfg run1.weights teacher.cfg backup/teacher.weights "$img" anchor.png -layer 5 -at 2,3 > anchor.log 2>&1 &&
    "$DARKNET" distill attention student-tat.cfg run1.weights teacher.cfg backup/teacher.weights "$img" bad.png -layer 5 -at 6,0 > bad.log 2>&1
rc=$?
if [ -f anchor.png ] && [ "$rc" -eq 1 ] && [ ! -f bad.png ] && grep -q 'position 6,0: .*leaves out' bad.log; then
    echo "PASS e2e_attention_anchor_and_uncovered_position"
else
    echo "FAIL e2e_attention_anchor_and_uncovered_position: exit $rc; $(tail -n 1 bad.log)"
fi
"$DARKNET" distill attention student-tat.cfg run1.weights teacher.cfg backup/teacher.weights "$img" bad.png -layer 2 > bad2.log 2>&1
rc=$?
if [ "$rc" -eq 1 ] && [ ! -f bad.png ] && grep -q -- '-layer 2 is not a \[tat_distill\]' bad2.log; then
    echo "PASS e2e_attention_bad_layer"
else
    echo "FAIL e2e_attention_bad_layer: exit $rc; $(tail -n 1 bad2.log)"
fi
