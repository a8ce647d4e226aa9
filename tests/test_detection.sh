#!/bin/bash
# Detection through the binary on a tiny generated Fashion-MNIST detection set (the shipped
# cfgs at batch 8): plain `detector train` whose loss falls, `distill detector train` whose
# [yolo_distill] term falls with every term on the progress line, a resume from the final
# weights and a SIGTERM stop that saves, `distill detector map` (its lines, the same numbers
# for the exported student), `distill export` stripping the sections and Darknet's
# `detector test` on the result, `distill check` on detection data, and the bad cfg pairs
# refused at start with one line.
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
need_fashion_mnist detection
enter_tmp
"$top/build/tools/fashion_detect_to_darknet" "$fashion_mnist" det --train 64 --valid 16 > gen.log 2>&1 || {
    echo "FAIL det_generate: $(tail -n 1 gen.log)"
    exit 0
}
sed 's|^backup=.*|backup=backup|' det/fashion-det.data > det.data
mkdir -p backup

small() { # small <cfg> <max_batches> > out
    sed -e 's/^batch=.*/batch=8/' -e "s/^max_batches=.*/max_batches=$2/" -e 's/^burn_in=.*/burn_in=0/' \
        -e "s/^steps=.*/steps=$2/" "$top/cfg/$1"
}
det_losses() { grep -E '^[0-9]+: ' "$1" | sed 's/^[0-9]*: \([0-9.]*\),.*/\1/'; }
term_losses() { # term_losses <log> <type[index]>
    grep '^distill: ' "$1" | sed -n "s/.* $2 \([^,]*\),.*/\1/p"
}
small fashion-det-teacher.cfg 30 > teacher.cfg
small fashion-det-student-distill.cfg 20 > student-distill.cfg

"$DARKNET" detector train det.data teacher.cfg -seed 1 > teacher.log 2> teacher.err
rc=$?
first=$(det_losses teacher.log | head -n 5 | mean)
last=$(det_losses teacher.log | tail -n 5 | mean)
echo "INFO teacher loss (mean of 5) $first -> $last" >&2
if [ $rc -eq 0 ] && [ -s backup/teacher_final.weights ] && awk -v a="$first" -v b="$last" 'BEGIN {exit !(b < 0.8 * a)}'; then
    echo "PASS det_plain_train_loss_falls"
else
    echo "FAIL det_plain_train_loss_falls: exit $rc, loss $first -> $last; $(tail -n 1 teacher.err)"
    exit 0
fi

"$DARKNET" distill detector train det.data student-distill.cfg teacher.cfg backup/teacher_final.weights -seed 2 > distill.log 2> distill.err
rc=$?
term_losses distill.log 'yolo_distill\[19\]' > kd_losses
n=$(wc -l < kd_losses)
first=$(head -n 4 kd_losses | mean)
last=$(tail -n 4 kd_losses | mean)
echo "INFO yolo_distill[19] loss (mean of 4) over $n iterations: $first -> $last" >&2
if [ $rc -eq 0 ] && [ "$n" -eq 20 ] && awk -v a="$first" -v b="$last" 'BEGIN {exit !(b < 0.8 * a)}'; then
    echo "PASS det_distill_kd_term_falls"
else
    echo "FAIL det_distill_kd_term_falls: exit $rc, $n progress lines, $first -> $last (want < 0.8x); $(tail -n 1 distill.err)"
fi
if [ "$(grep -c '^distill: tat_distill\[9\] .*; yolo_distill\[11\] .*; yolo_distill\[19\] ' distill.log)" -eq 20 ]; then
    echo "PASS det_distill_progress_shows_each_term"
else
    echo "FAIL det_distill_progress_shows_each_term: $(grep '^distill: ' distill.log | tail -n 1)"
fi

# resume: the final weights and a budget 4 longer continue at iteration 21
mkdir -p resume
small fashion-det-student-distill.cfg 24 > resume/student-distill.cfg
"$DARKNET" distill detector train det.data resume/student-distill.cfg teacher.cfg backup/teacher_final.weights \
    backup/student-distill_final.weights -seed 2 > resume.log 2> resume.err
rc=$?
firstline=$(grep -E '^[0-9]+: ' resume.log | head -n 1 | cut -d: -f1)
if [ $rc -eq 0 ] && [ "$firstline" = 21 ] && [ "$(grep -cE '^[0-9]+: ' resume.log)" -eq 4 ]; then
    echo "PASS det_distill_resume"
else
    echo "FAIL det_distill_resume: exit $rc, first iteration '$firstline' (want 21); $(tail -n 1 resume.err)"
fi

# SIGTERM: the iteration finishes, backup/<cfg>.backup is saved, exit 0
mkdir -p long
small fashion-det-student-distill.cfg 100000 > long/student-distill.cfg
run_long() { exec "$DARKNET" distill detector train det.data long/student-distill.cfg teacher.cfg backup/teacher_final.weights -seed 2; }
run_long > long.log 2> long.err < /dev/null &
pid=$!
for i in $(seq 600); do
    grep -q '^3: ' long.log 2> /dev/null && break
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
done
kill -TERM "$pid" 2> /dev/null
wait "$pid"
rc=$?
if [ $rc -eq 0 ] && grep -q 'SIGTERM at iteration [0-9]*: saved backup/student-distill.backup' long.err && [ -s backup/student-distill.backup ]; then
    echo "PASS det_distill_sigterm_saves"
else
    echo "FAIL det_distill_sigterm_saves: exit $rc; $(tail -n 1 long.err)"
fi

# map: the summary lines; the exported student gives the same numbers
"$DARKNET" distill detector map det.data student-distill.cfg backup/student-distill_final.weights > map.log 2> map.err
rc=$?
if [ $rc -eq 0 ] && grep -qE '^mAP@0.5 [0-9.]+$' map.log && grep -qE '^mAP@0.5:0.95 [0-9.]+$' map.log &&
    [ "$(grep -cE '^[0-9] ' map.log)" -eq 10 ]; then
    echo "PASS det_map_lines"
else
    echo "FAIL det_map_lines: exit $rc; $(tail -n 1 map.err)"
fi
"$DARKNET" distill export student-distill.cfg backup/student-distill_final.weights out.cfg out.weights > export.log 2>&1
rc=$?
if [ $rc -eq 0 ] && ! grep -q '_distill\]' out.cfg && [ "$(grep -c '^\[yolo\]' out.cfg)" -eq 2 ]; then
    echo "PASS det_export_strips_sections"
else
    echo "FAIL det_export_strips_sections: exit $rc; $(tail -n 1 export.log)"
fi
"$DARKNET" distill detector map det.data out.cfg out.weights > map-out.log 2> /dev/null
if [ -s map.log ] && diff -q <(tail -n 13 map.log) <(tail -n 13 map-out.log) > /dev/null; then
    echo "PASS det_export_same_map"
else
    echo "FAIL det_export_same_map: $(diff <(tail -n 3 map.log) <(tail -n 3 map-out.log) | tr '\n' ' ')"
fi
# Darknet's detector test reads its glyphs from data/labels/ of the Darknet tree
if [ -n "${DARKNET_DIR:-}" ] && [ -d "$DARKNET_DIR/data/labels" ]; then
    mkdir -p data && ln -s "$DARKNET_DIR/data/labels" data/labels
    "$DARKNET" detector test det.data out.cfg out.weights det/valid/images/00000.png -thresh 0.05 > test.log 2> test.err
    rc=$?
    if [ $rc -eq 0 ] && grep -q 'Predicted in' test.log && [ -s predictions.jpg ]; then
        echo "PASS det_detector_test_on_export"
    else
        echo "FAIL det_detector_test_on_export: exit $rc; $(tail -n 1 test.err)"
    fi
else
    echo "SKIP det_detector_test_on_export: DARKNET_DIR/data/labels not found"
fi

# distill check: the generated set has no problem; a broken label is named by file and line
if "$DARKNET" distill check det.data > check.log 2> check.err && grep -q ': 0 problems' check.log; then
    echo "PASS det_check_clean_set"
else
    echo "FAIL det_check_clean_set: $(tail -n 1 check.err) $(cat check.log)"
fi
cp -r det bad && sed 's|det/|bad/|g' det.data > bad.data && sed -i 's|^train=.*|train=bad/train.list|;s|^valid=.*|valid=bad/valid.list|' bad.data
sed 's|^det/|bad/|' det/train.list > bad/train.list && sed 's|^det/|bad/|' det/valid.list > bad/valid.list
echo '11 0.5 0.5 0.1 0.1' >> bad/train/labels/00003.txt
rm bad/valid/labels/00002.txt
"$DARKNET" distill check bad.data > check.log 2> check.err
rc=$?
if [ $rc -eq 1 ] && grep -q 'bad/train/labels/00003.txt: line [0-9]*: class 11' check.err &&
    grep -q 'bad/valid/labels/00002.txt: no label file' check.err && grep -q ': 2 problems' check.log; then
    echo "PASS det_check_names_file_and_line"
else
    echo "FAIL det_check_names_file_and_line: exit $rc; $(head -n 3 check.err | tr '\n' ' ')"
fi

# bad pairs, refused at start with one line naming the section and the field
sed 's/^teacher_layer=12$/teacher_layer=11/' student-distill.cfg > not-yolo.cfg
expect_error exit1 det_refuses_teacher_layer_not_yolo "not-yolo.cfg yolo_distill teacher_layer [convolutional]" -- \
    "$DARKNET" distill detector train det.data not-yolo.cfg teacher.cfg backup/teacher_final.weights
sed 's/^teacher_layer=12$/teacher_layer=19/' student-distill.cfg > stride.cfg
expect_error exit1 det_refuses_other_stride "stride.cfg yolo_distill teacher_layer 8 x 8 4 x 4" -- \
    "$DARKNET" distill detector train det.data stride.cfg teacher.cfg backup/teacher_final.weights
sed 's/^teacher_layer=8$/teacher_layer=6/;s/^teacher_channels=256$/teacher_channels=128/' student-distill.cfg > map-size.cfg
expect_error exit1 det_refuses_teacher_map_of_other_size "map-size.cfg tat_distill teacher_layer" -- \
    "$DARKNET" distill detector train det.data map-size.cfg teacher.cfg backup/teacher_final.weights
sed 's/^random=0/random=1/' student-distill.cfg > random.cfg
expect_error exit1 det_refuses_random_resize "random.cfg random=1" -- \
    "$DARKNET" distill detector train det.data random.cfg teacher.cfg backup/teacher_final.weights
awk '/^\[yolo_distill\]/ {n++} {print} /^\[yolo_distill\]/ && n == 2 {print "from=-7"}' student-distill.cfg > from-yolo.cfg
expect_error exit1 det_refuses_from_a_yolo_layer "from-yolo.cfg yolo_distill from [yolo]" -- \
    "$DARKNET" distill detector train det.data from-yolo.cfg teacher.cfg backup/teacher_final.weights
sed 's/^teacher_layer=19$/teacher_layer=19\ntemperature=2/' student-distill.cfg > unknown.cfg
expect_error exit1 det_refuses_unknown_field "unknown.cfg yolo_distill temperature" -- \
    "$DARKNET" distill detector train det.data unknown.cfg teacher.cfg backup/teacher_final.weights
# an input that the run would save onto (the detector loop's <cfg name>_final.weights) is refused
cp backup/teacher_final.weights backup/student-distill_final.weights
expect_error exit1 det_refuses_input_it_would_overwrite "student-distill_final.weights overwritten" \
    backup/student-distill_final.weights -- \
    "$DARKNET" distill detector train det.data student-distill.cfg teacher.cfg backup/student-distill_final.weights
# [yolo] max= other than 90 (patch 0034: the truths are read at the loader's stride) trains;
# heads whose max= differ are refused (the loader lays out the last head's count)
mkdir -p maxb
small fashion-det-student.cfg 2 | awk '{print} /^\[yolo\]/ {print "max=8"}' > maxb/max.cfg
sed 's|^backup=.*|backup=maxb|' det.data > maxb.data
"$DARKNET" detector train maxb.data maxb/max.cfg -seed 1 > max.log 2> max.err
rc=$?
if [ $rc -eq 0 ] && [ -s maxb/max_final.weights ] && [ "$(grep -cE '^[0-9]+: ' max.log)" -eq 2 ]; then
    echo "PASS det_max_boxes_other_than_90_trains"
else
    echo "FAIL det_max_boxes_other_than_90_trains: exit $rc; $(tail -n 1 max.err)"
fi
awk '{print} /^\[yolo\]/ && !n++ {print "max=8"}' student-distill.cfg > max-one.cfg
expect_error exit1 det_refuses_max_boxes_differing_heads "max-one.cfg max=8 max=90" -- \
    "$DARKNET" distill detector train det.data max-one.cfg teacher.cfg backup/teacher_final.weights
awk '{print} /^\[yolo\]/ {print "max=0"}' student-distill.cfg > max-zero.cfg
expect_error exit1 det_refuses_max_boxes_below_1 "max-zero.cfg max=0 at least 1" -- \
    "$DARKNET" distill detector train det.data max-zero.cfg teacher.cfg backup/teacher_final.weights
