#!/bin/bash
# The paper's ImageNet pipeline in miniature: a few Fashion-MNIST images as an ImageFolder tree
# (tools/imagefolder_to_darknet.py), a torchvision ResNet-34 teacher and ResNet-18 student
# (randomly initialised, 10 classes, no download) converted by tools/torchvision_to_darknet.py,
# and the student distilled from its converted weights with the repository's ImageNet cfgs
# (64x64 input, AdamW) for a few iterations. Checks: the lists and labels, the ImageFolder
# tool's refusals, the start from the converted student weights (one line naming the
# distillation layer that starts from scratch), finite losses, the backup, and a resume from
# that backup (the distilled file loads whole).
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
py=/usr/bin/python3
fashion_subset e2e_pretrained 80
mkdir -p backup/fm

# ImageFolder tree: tree/<split>/<class>/<image>, linked to the converted images
# (names like 00012_c9_ankle_boot.png: the class follows _cN_)
for split in train test; do
    while read -r p; do
        f=$(basename "$p")
        class=${f#*_c?_}
        class=${class%.png}
        mkdir -p "tree/$split/$class"
        ln -s "$PWD/$p" "tree/$split/$class/$f"
    done < <(head -n 80 "data/$split.list")
done
if "$py" "$top/tools/imagefolder_to_darknet.py" tree/train tree/test lists fm > folder.log 2>&1 &&
    [ "$(wc -l < lists/labels.txt)" -ge 2 ] && [ "$(wc -l < lists/train.list)" = 80 ] &&
    grep -q '^classes=' lists/fm.data; then
    # every listed path holds exactly one label, its own class folder
    bad=$(awk 'NR == FNR {l[++n] = $0; next} {c = 0; for (i = 1; i <= n; ++i) if (index($0, l[i])) ++c; if (c != 1) print}' \
        lists/labels.txt lists/train.list lists/valid.list | head -n 1)
    if [ -z "$bad" ]; then echo "PASS imagefolder_lists"; else echo "FAIL imagefolder_lists: $bad matches no label or several"; fi
else
    echo "FAIL imagefolder_lists: $(tail -n 1 folder.log)"
fi
# tshirt_top vs shirt: a plain substring label would match both; "/shirt/" matches one
grep -q '^/shirt/$' lists/labels.txt && grep -q '^/tshirt_top/$' lists/labels.txt &&
    [ "$(grep -c '/tshirt_top/' lists/train.list)" -gt 0 ] &&
    ! grep '/tshirt_top/' lists/train.list | grep -q '/shirt/' &&
    echo "PASS imagefolder_labels_are_path_components" ||
    echo "FAIL imagefolder_labels_are_path_components: $(tr '\n' ' ' < lists/labels.txt)"
# refusals: one line, exit 1, nothing written
mkdir -p empty nested/train/a/b
ln -s "$PWD/$(head -n 1 data/train.list)" nested/train/a/b/x.png
mkdir -p nested/train/b && ln -s "$PWD/$(head -n 1 data/train.list)" nested/train/b/y.png
for c in "empty empty" "nested/train nested/train"; do
    set -- $c
    "$py" "$top/tools/imagefolder_to_darknet.py" "$1" "$2" refused > refused.log 2>&1
    rc=$?
    if [ "$rc" = 1 ] && [ "$(wc -l < refused.log)" = 1 ] && [ ! -e refused/train.list ]; then
        echo "PASS imagefolder_refuses_${1%%/*}"
    else
        echo "FAIL imagefolder_refuses_${1%%/*}: exit $rc, $(head -n 2 refused.log | tr '\n' ' ')"
    fi
done

# the repository's cfgs at 64x64, batch 8, 10 classes, a few iterations
small() { # small <cfg> <max_batches>
    sed -e 's/^\(width\|height\|min_crop\|max_crop\)=.*/\1=64/' -e 's/^batch=.*/batch=8/' \
        -e 's/^filters=1000$/filters=10/' -e "s/^max_batches=.*/max_batches=$2/" \
        -e 's/^steps=.*/steps=1000/' -e 's/^scales=.*/scales=.1/' \
        -e 's/^learning_rate=.*/learning_rate=0.001/' -e 's/^aspect=.*/aspect=1/' "$1"
}
small "$top/cfg/imagenet-resnet34-teacher.cfg" 1 > teacher.cfg
small "$top/cfg/imagenet-resnet18-tat.cfg" 4 > student.cfg
# bad normalisation fields: one line naming the cfg, [net] and the field; exit 1
for bad in "input_mean=0.5,0.5" "input_std=0.2,0,0.2"; do
    field=${bad%%=*}
    { sed -n '1,/^channels=/p' teacher.cfg | grep -v '^input_'; echo "$bad"; [ "$field" = input_std ] &&
        echo "input_mean=0,0,0"; [ "$field" = input_mean ] && echo "input_std=1,1,1"
      sed -n '/^channels=/,$p' teacher.cfg | sed 1d | grep -v '^input_'; } > bad.cfg
    "$DARKNET" classifier valid lists/fm.data bad.cfg > bad.log 2>&1
    rc=$?
    if [ "$rc" = 1 ] && grep -q "^bad.cfg: \[net\] $field: needs 3 comma-separated numbers" bad.log; then
        echo "PASS input_normalization_refuses_$field"
    else
        echo "FAIL input_normalization_refuses_$field: exit $rc, $(tail -n 1 bad.log)"
    fi
done
"$py" - << 'EOF' > torch.log 2>&1
import torch, torchvision
torch.manual_seed(0)
for arch in ("resnet18", "resnet34"):
    torch.save(getattr(torchvision.models, arch)(num_classes=10).state_dict(), arch + ".pth")
EOF
if "$py" "$top/tools/torchvision_to_darknet.py" resnet34.pth teacher.cfg teacher.weights > conv.log 2>&1 &&
    "$py" "$top/tools/torchvision_to_darknet.py" resnet18.pth student.cfg student.weights >> conv.log 2>&1; then
    echo "PASS e2e_pretrained_convert"
else
    echo "FAIL e2e_pretrained_convert: $(tail -n 1 torch.log conv.log | tr '\n' ' ')"
    exit 0
fi

"$DARKNET" distill classifier train lists/fm.data student.cfg teacher.cfg teacher.weights student.weights \
    -seed 1 > run.log 2>&1
rc=$?
if [ "$rc" = 0 ] && [ "$(grep -c '^distill: tat_distill\[32\]' run.log)" = 4 ] && [ -f backup/fm/student.weights ] &&
    ! grep -E '^distill: tat_distill' run.log | grep -qiE 'nan|inf'; then
    echo "PASS e2e_pretrained_distills"
else
    echo "FAIL e2e_pretrained_distills: exit $rc; $(tail -n 2 run.log | tr '\n' ' ')"
fi
line=$(grep 'without its distillation sections' run.log)
echo "INFO $line" >&2
if [ "$(grep -c 'without its distillation sections' run.log)" = 1 ] &&
    echo "$line" | grep -q 'student.weights: .*tat_distill (layer 32) starts from scratch'; then
    echo "PASS e2e_pretrained_start_line"
else
    echo "FAIL e2e_pretrained_start_line: $(grep -i 'weights' run.log | head -n 3 | tr '\n' ' ')"
fi
# resume from the distilled run's own file: it holds the embeddings, loads whole, no such line
sed -i 's/^max_batches=.*/max_batches=6/' student.cfg
"$DARKNET" distill classifier train lists/fm.data student.cfg teacher.cfg teacher.weights \
    backup/fm/student.weights -seed 1 > resume.log 2>&1
rc=$?
if [ "$rc" = 0 ] && ! grep -q 'without its distillation sections' resume.log &&
    [ "$(grep -c '^distill: tat_distill\[32\]' resume.log)" = 2 ]; then
    echo "PASS e2e_pretrained_resume"
else
    echo "FAIL e2e_pretrained_resume: exit $rc; $(tail -n 2 resume.log | tr '\n' ' ')"
fi
