#!/bin/bash
# Runs that used to end in exit 0 with a silent wrong result, or with a misleading message,
# through the binary on a few Fashion-MNIST images; each must now be one line naming the file
# and the field (or the option, or the word), exit 1, no file changed:
# - a student already trained to its cfg's max_batches passed to `distill ... train` (0
#   iterations, the weights saved again without distillation); -clear trains it from iteration 0;
# - `distill attention` with weights that hold no distillation embeddings (an exported
#   student's); the distilled weights draw;
# - a field given twice in a distillation section or in [net];
# - -seed given twice, -clear given twice, a mistyped command or classifier verb;
# - docs/imagenet.md's resume step names the files that exist when (the .backup only every
#   1000 iterations or after a stop).
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"

# ---- the docs (no binary needed)
resume=$(awk '/To resume/ {on = 1} on {print} on && /^ *$/ {exit}' "$top/docs/imagenet.md" | tr '\n' ' ')
case $resume in
*1000*"_<epoch>.weights"*) echo "PASS imagenet_doc_resume_names_existing_files" ;;
*) echo "FAIL imagenet_doc_resume_names_existing_files: the resume step does not say that the .backup exists only every 1000 iterations, nor name _<epoch>.weights: $resume" ;;
esac

fashion_subset more_refusals 16
{ net_head batch=8 max_batches=2; conv 8 3; pool; head_out; } > teacher.cfg
student() { net_head batch=8 max_batches=2; conv 8 3; pool; printf '[tat_distill]\nteacher_layer=1\nteacher_channels=8\n%s\n' "${1:-}"; head_out; }
student > student.cfg
data_file > ok.data
"$DARKNET" classifier train ok.data teacher.cfg -seed 1 > setup.log 2>&1 &&
    "$DARKNET" distill classifier train ok.data student.cfg teacher.cfg backup/teacher.weights -seed 1 >> setup.log 2>&1 ||
    { echo "FAIL more_refusals_setup: $(tail -n 1 setup.log)"; exit 0; }
train() { "$DARKNET" distill classifier train "$1" "$2" teacher.cfg backup/teacher.weights "${@:3}"; }

# ---- a student already at max_batches
mkdir -p pre && data_file backup=pre > pre.data
cp student.cfg pre.cfg
"$DARKNET" classifier train pre.data pre.cfg -seed 1 > pre.log 2>&1  # plain training of the same cfg
cp pre/pre.weights pretrained.weights
expect_error exit1 distill_student_already_at_max_batches "pre.cfg iteration 2 max_batches=2 nothing left -clear" pretrained.weights pre/pre.weights -- \
    train pre.data pre.cfg pretrained.weights -seed 1
expect_error exit1 plain_train_already_at_max_batches "pre.cfg iteration 2 max_batches=2 -clear" pretrained.weights pre/pre.weights -- \
    "$DARKNET" classifier train pre.data pre.cfg pretrained.weights -seed 1
if train pre.data pre.cfg pretrained.weights -clear -seed 1 > clear.log 2>&1 && grep -q '^distill: tat_distill\[2\]' clear.log &&
    [ "$(grep -cE '^[0-9]+, [0-9.]+: ' clear.log)" -eq 2 ]; then
    echo "PASS distill_student_at_max_batches_clear_trains"
else
    echo "FAIL distill_student_at_max_batches_clear_trains: $(tail -n 1 clear.log)"
fi

# ---- distill attention with weights that hold no distillation embeddings
"$DARKNET" distill export student.cfg backup/student.weights exported.cfg exported.weights > export.log 2>&1 ||
    echo "FAIL more_refusals_export: $(tail -n 1 export.log)"
image=$(head -n 1 data/test.list)
expect_error exit1 attention_without_embeddings "exported.weights no weights distillation sections student.cfg" exported.weights -- \
    "$DARKNET" distill attention student.cfg exported.weights teacher.cfg backup/teacher.weights "$image" map.png
[ ! -e map.png ] && echo "PASS attention_without_embeddings_writes_nothing" || echo "FAIL attention_without_embeddings_writes_nothing: map.png written"
if "$DARKNET" distill attention student.cfg backup/student.weights teacher.cfg backup/teacher.weights "$image" map.png > att.log 2>&1 && [ -s map.png ]; then
    echo "PASS attention_distilled_weights_draw"
else
    echo "FAIL attention_distilled_weights_draw: $(tail -n 1 att.log)"
fi

# ---- a field given twice
student 'teacher_layer=0' > dup.cfg  # teacher_layer=1, then teacher_layer=0: Darknet's reader takes the first
expect_error exit1 distill_section_field_twice "dup.cfg [tat_distill] (layer 2) teacher_layer given twice teacher_layer=1 teacher_layer=0" -- \
    train ok.data dup.cfg -seed 1
{ net_head batch=8 max_batches=2 | sed 's/^batch=8$/batch=8\nbatch=4/'; conv 8 3; pool; head_out; } > dupnet.cfg
expect_error exit1 net_field_twice "dupnet.cfg [net] batch given twice batch=8 batch=4" -- \
    "$DARKNET" classifier train ok.data dupnet.cfg -seed 1
expect_error exit1 teacher_net_field_twice "dupnet.cfg [net] batch given twice" -- \
    "$DARKNET" distill classifier train ok.data student.cfg dupnet.cfg backup/teacher.weights -seed 1

# ---- options given twice, mistyped words
cp backup/student.weights s.weights
expect_error exit1 seed_given_twice "-seed given 2 times" s.weights -- train ok.data student.cfg s.weights -seed 1 -seed 2
expect_error exit1 clear_given_twice "-clear given 2 times" s.weights -- train ok.data student.cfg s.weights -clear -clear
expect_error exit1 distill_command_typo "'clasifier' is not a command usage classifier|segmenter" -- \
    "$DARKNET" distill clasifier train ok.data student.cfg teacher.cfg backup/teacher.weights
expect_error exit1 classifier_verb_typo "'trian' is not a classifier command" -- \
    "$DARKNET" distill classifier trian ok.data student.cfg teacher.cfg backup/teacher.weights
if [ "$(wc -l < err.log)" -eq 1 ]; then echo "PASS classifier_verb_typo_one_line"
else echo "FAIL classifier_verb_typo_one_line: $(wc -l < err.log) lines"; fi
