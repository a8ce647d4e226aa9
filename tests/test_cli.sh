#!/bin/bash
# Bad input through the real binary: every case must exit non-zero (not by a signal) with a
# one-line message naming the file, the section and the field; weights already on disk stay.
# Needs DARKNET (the CPU binary) and python3 (to write weights files of exact sizes).
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
enter_tmp

# write_weights <file> <float count>: a header (major 0, minor 2, revision 0, seen) + zeros
write_weights() {
    python3 -c "import struct,sys; open(sys.argv[1],'wb').write(struct.pack('<iiiQ',0,2,0,0)+bytes(4*int(sys.argv[2])))" "$1" "$2"
}

cat > teacher.cfg <<'EOF'
[net]
batch=2
width=8
height=8
channels=3

[convolutional]
filters=6
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2
EOF
# conv: 6 biases + 6*3*3*3 weights; maxpool: none
write_weights teacher.weights $((6 + 162))
student_head='[net]
batch=2
width=8
height=8
channels=3

[convolutional]
filters=4
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2
'
printf 'classes=2\ntrain=train.list\nlabels=labels.txt\nbackup=.\n' > fake.data
printf 'a\nb\n' > labels.txt
: > train.list
train() { "$DARKNET" distill classifier train fake.data "$1" teacher.cfg teacher.weights "${@:2}"; }
student() { printf '%s\n%s\n' "$student_head" "$2" > "$1"; }

student unknown.cfg '[frobnicate]
x=1'
expect_error nonzero unknown_section "unknown.cfg [frobnicate] unknown" -- "$DARKNET" classifier valid fake.data unknown.cfg

# Malformed cfg files (Darknet aborted with an assertion, or read garbage silently)
printf '[convolutional]\nfilters=4\n' > nonet.cfg
expect_error nonzero cfg_without_net_section "nonet.cfg [net] [convolutional]" -- "$DARKNET" classifier valid fake.data nonet.cfg
: > empty.cfg
expect_error nonzero cfg_empty "empty.cfg sections" -- "$DARKNET" classifier valid fake.data empty.cfg
printf '%s\n[convolutional]\nfilters=4\nsize=3\nstr' "$student_head" > truncated.cfg
expect_error nonzero cfg_truncated_line "truncated.cfg :21: 'str' key=value" -- "$DARKNET" classifier valid fake.data truncated.cfg
printf '%s\n[local]\nfilters=2\nsize=9\n' "$student_head" > local.cfg
expect_error nonzero local_kernel_larger_than_input "local.cfg [local] size 4 x 4" -- "$DARKNET" classifier valid fake.data local.cfg
printf 'width=8\n[net]\n' > early.cfg
expect_error nonzero cfg_option_before_section "early.cfg :1: width=8 section" -- "$DARKNET" classifier valid fake.data early.cfg

student groups.cfg '[tat_distill]
from=-1
teacher_layer=1
teacher_channels=6
grid=2,3
groups=4'
expect_error nonzero groups_do_not_divide "groups.cfg [tat_distill] groups divide" -- train groups.cfg

student grid.cfg '[tat_distill]
teacher_layer=1
teacher_channels=6
grid=5,2'
expect_error nonzero grid_larger_than_map "grid.cfg [tat_distill] grid larger" -- train grid.cfg

student attention.cfg '[tat_distill]
teacher_layer=1
teacher_channels=6
attention=fast'
expect_error nonzero attention_mode_unknown "attention.cfg [tat_distill] attention 'fast' streaming" -- train attention.cfg

student anchor_attention.cfg '[anchor_distill]
teacher_layer=1
teacher_channels=6
anchors=2,2
attention=tiled'
expect_error nonzero anchor_attention_mode_unknown "anchor_attention.cfg [anchor_distill] attention 'tiled' materialized" -- train anchor_attention.cfg

student anchors.cfg '[anchor_distill]
teacher_layer=1
teacher_channels=6
anchors=2,9'
expect_error nonzero anchor_grid_larger_than_map "anchors.cfg [anchor_distill] anchors larger" -- train anchors.cfg

student shape.cfg '[tat_distill]
teacher_layer=0
teacher_channels=6'
expect_error nonzero teacher_student_size_differs "shape.cfg [tat_distill] teacher_layer size" -- train shape.cfg

student channels.cfg '[tat_distill]
teacher_layer=1
teacher_channels=7'
expect_error nonzero teacher_channels_differ "channels.cfg [tat_distill] teacher_channels 6" -- train channels.cfg

student tlayer.cfg '[tat_distill]
teacher_layer=5
teacher_channels=6'
expect_error nonzero teacher_layer_out_of_range "tlayer.cfg [tat_distill] teacher_layer range" -- train tlayer.cfg

student from.cfg '[tat_distill]
from=-3
teacher_layer=1
teacher_channels=6'
expect_error nonzero student_layer_out_of_range "from.cfg [tat_distill] from earlier" -- train from.cfg

student field.cfg '[tat_distill]
teacher_layer=1
teacher_channels=6
loss_wieght=2'
expect_error nonzero unknown_field "field.cfg [tat_distill] loss_wieght unknown" -- train field.cfg

student notint.cfg '[tat_distill]
teacher_layer=one
teacher_channels=6'
expect_error nonzero field_not_an_integer "notint.cfg [tat_distill] teacher_layer integer" -- train notint.cfg

# tf32 (TF32 GEMMs on a GPU build) is 0 or 1, in every distillation section
student tf32.cfg '[kd_distill]
teacher_layer=1
tf32=2'
expect_error nonzero tf32_not_0_or_1 "tf32.cfg [kd_distill] tf32 2 0 or 1" -- train tf32.cfg

student share.cfg '[anchor_distill]
embeddings=-1
anchors=2,2'
expect_error nonzero shared_embeddings_not_tat_distill "share.cfg [anchor_distill] embeddings [tat_distill]" -- train share.cfg

# [kd_distill] and [fitnet_distill]
student kd_t0.cfg '[kd_distill]
teacher_layer=1
temperature=0'
expect_error nonzero kd_temperature_zero "kd_t0.cfg [kd_distill] (layer 2) temperature > 0" -- train kd_t0.cfg
student kd_tneg.cfg '[kd_distill]
teacher_layer=1
temperature=-2'
expect_error nonzero kd_temperature_negative "kd_tneg.cfg [kd_distill] temperature -2 > 0" -- train kd_tneg.cfg
student kd_tnan.cfg '[kd_distill]
teacher_layer=1
temperature=warm'
expect_error nonzero kd_temperature_not_a_number "kd_tnan.cfg [kd_distill] temperature 'warm' number" -- train kd_tnan.cfg
student kd_size.cfg '[kd_distill]
teacher_layer=1
temperature=4'
expect_error nonzero kd_logits_size_differs "kd_size.cfg [kd_distill] teacher_layer 96 64 same size" -- train kd_size.cfg
student kd_weight.cfg '[kd_distill]
teacher_layer=1
loss_weight=-1'
expect_error nonzero kd_negative_weight "kd_weight.cfg [kd_distill] loss_weight >= 0" -- train kd_weight.cfg
student kd_field.cfg '[kd_distill]
teacher_layer=1
temprature=4'
expect_error nonzero kd_unknown_field "kd_field.cfg [kd_distill] temprature unknown" -- train kd_field.cfg
student kd_softmax.cfg '[softmax]

[kd_distill]
from=-2
teacher_layer=1'
expect_error nonzero distill_after_loss_layer "kd_softmax.cfg [kd_distill] (layer 3) section softmax before" -- train kd_softmax.cfg
student fit_ch.cfg '[fitnet_distill]
teacher_layer=1
teacher_channels=5'
expect_error nonzero fitnet_teacher_channels_differ "fit_ch.cfg [fitnet_distill] teacher_channels 5 6" -- train fit_ch.cfg
student fit_hw.cfg '[fitnet_distill]
teacher_layer=0
teacher_channels=6'
expect_error nonzero fitnet_map_size_differs "fit_hw.cfg [fitnet_distill] teacher_layer 8 x 8 4 x 4 same size" -- train fit_hw.cfg
student fit_req.cfg '[fitnet_distill]
teacher_layer=1'
expect_error nonzero fitnet_teacher_channels_missing "fit_req.cfg [fitnet_distill] teacher_channels required" -- train fit_req.cfg
student fit_bn.cfg '[fitnet_distill]
teacher_layer=1
teacher_channels=6
bn=group'
expect_error nonzero fitnet_bad_bn_mode "fit_bn.cfg [fitnet_distill] bn 'group' batch image" -- train fit_bn.cfg

student ok.cfg '[tat_distill]
teacher_layer=1
teacher_channels=6'
expect_error nonzero missing_teacher_arguments "usage" -- "$DARKNET" distill classifier train fake.data ok.cfg teacher.cfg
expect_error nonzero missing_teacher_weights "missing.weights" -- "$DARKNET" distill classifier train fake.data ok.cfg teacher.cfg missing.weights
write_weights short.weights 100
expect_error nonzero teacher_weights_mismatch_short "short.weights" -- "$DARKNET" distill classifier train fake.data ok.cfg teacher.cfg short.weights
write_weights long.weights 200
expect_error nonzero teacher_weights_mismatch_long "long.weights left" -- "$DARKNET" distill classifier train fake.data ok.cfg teacher.cfg long.weights
expect_error nonzero plain_weights_mismatch "long.weights left" -- "$DARKNET" classifier test fake.data teacher.cfg long.weights
expect_error nonzero negative_seed "-seed" -- train ok.cfg -seed -3
expect_error nonzero unknown_flag "--frobnicate" -- train ok.cfg --frobnicate
sed 's/^width=8/width=16/' teacher.cfg > wide-teacher.cfg
expect_error nonzero teacher_input_size_differs "wide-teacher.cfg [net] 16 x 8 x 3 ok.cfg" -- "$DARKNET" distill classifier train fake.data ok.cfg wide-teacher.cfg teacher.weights
student nodistill.cfg ''
expect_error nonzero student_without_distill_layers "nodistill.cfg nothing" -- train nodistill.cfg
expect_error nonzero missing_student_weights "nope.weights" -- train ok.cfg nope.weights

# A failed start must not touch weights already written.
cp teacher.weights keep.weights
before=$(sha256sum keep.weights)
train groups.cfg keep.weights > /dev/null 2>&1
[ "$(sha256sum keep.weights)" = "$before" ] && echo "PASS failed_run_leaves_weights" ||
    echo "FAIL failed_run_leaves_weights: keep.weights changed"
