#!/bin/bash
# The stratified labelled subsets of tools/fashion_mnist_to_darknet (--train-per-class,
# --holdout-per-class, --subset-seed): N images of every class in train.list, V more of every
# class in holdout.list, the rest of the training set in unlabeled.list, the three disjoint and
# together the whole training set; the same seed draws the same lists, another seed others;
# a larger subset of the same seed contains the smaller one and keeps its held-out split; bad
# flags are one line, exit 1. Needs build/tools/fashion_mnist_to_darknet and the
# Fashion-MNIST package.
set -u
. "$(dirname "$0")/lib.sh"
need_fashion_mnist fashion_subsets
enter_tmp
tool=${FASHION_TOOL:-$top/build/tools/fashion_mnist_to_darknet}

convert() { # convert <out dir> <flags...>
    local dir=$1
    shift
    "$tool" "$fashion_mnist" "$dir" "$@" > "$dir.log" 2>&1 || { echo "FAIL fashion_subsets_convert: $(tail -n 1 "$dir.log")"; exit 0; }
}
convert a --train-per-class 30 --holdout-per-class 7 --subset-seed 5
convert b --train-per-class 30 --holdout-per-class 7 --subset-seed 5
convert c --train-per-class 30 --holdout-per-class 7 --subset-seed 6
convert e --train-per-class 40 --holdout-per-class 7 --subset-seed 5

classes_of() { sed 's/.*_\(c[0-9]\)_.*/\1/' "$1" | sort | uniq -c | awk '{print $1}' | sort -u | tr '\n' ' '; }
per_train=$(classes_of a/train.list)
per_holdout=$(classes_of a/holdout.list)
ntrain=$(sed 's/.*_\(c[0-9]\)_.*/\1/' a/train.list | sort -u | wc -l)
if [ "$per_train" = "30 " ] && [ "$per_holdout" = "7 " ] && [ "$ntrain" -eq 10 ]; then
    echo "PASS fashion_subsets_stratified"
else
    echo "FAIL fashion_subsets_stratified: per class train '$per_train', holdout '$per_holdout', classes $ntrain"
fi

all=$(cat a/train.list a/holdout.list a/unlabeled.list | sort | uniq -d | wc -l)
total=$(cat a/train.list a/holdout.list a/unlabeled.list | sort -u | wc -l)
exist=$(cat a/train.list a/holdout.list | head -n 50 | while read -r f; do [ -f "$f" ] && echo y; done | wc -l)
if [ "$all" -eq 0 ] && [ "$total" -eq 60000 ] && [ "$exist" -eq 50 ] && grep -qx 'valid=a/holdout.list' a/holdout.data &&
    grep -qx 'valid=a/test.list' a/fashion.data; then
    echo "PASS fashion_subsets_disjoint_cover"
else
    echo "FAIL fashion_subsets_disjoint_cover: $all listed twice, $total distinct of 60000, $exist of 50 files exist; $(grep valid a/*.data | tr '\n' ' ')"
fi

if cmp -s a/train.list <(sed 's|^b/|a/|' b/train.list) && cmp -s a/holdout.list <(sed 's|^b/|a/|' b/holdout.list) &&
    ! cmp -s a/train.list <(sed 's|^c/|a/|' c/train.list); then
    echo "PASS fashion_subsets_seeded"
else
    echo "FAIL fashion_subsets_seeded: seed 5 twice gave $(cmp a/train.list <(sed 's|^b/|a/|' b/train.list) > /dev/null && echo the same || echo different) lists; seed 6 $(cmp a/train.list <(sed 's|^c/|a/|' c/train.list) > /dev/null && echo the same || echo others)"
fi

# a larger subset of the same seed keeps the held-out split and holds the smaller subset
if cmp -s a/holdout.list <(sed 's|^e/|a/|' e/holdout.list) &&
    [ "$(comm -23 a/train.list <(sed 's|^e/|a/|' e/train.list) | wc -l)" -eq 0 ] && [ "$(wc -l < e/train.list)" -eq 400 ]; then
    echo "PASS fashion_subsets_nested"
else
    echo "FAIL fashion_subsets_nested: 40 per class: held-out $(cmp -s a/holdout.list <(sed 's|^e/|a/|' e/holdout.list) && echo same || echo other), $(comm -23 a/train.list <(sed 's|^e/|a/|' e/train.list) | wc -l) of the 30-per-class images missing"
fi

expect_error exit1 fashion_subsets_too_many "--train-per-class 7000 class c0_tshirt_top has only 6000" -- "$tool" "$fashion_mnist" d --train-per-class 7000
expect_error exit1 fashion_subsets_bad_count "--train-per-class positive integer '0'" -- "$tool" "$fashion_mnist" d --train-per-class 0
expect_error exit1 fashion_subsets_seed_alone "--subset-seed need --train-per-class" -- "$tool" "$fashion_mnist" d --subset-seed 3
expect_error exit1 fashion_subsets_with_limit "--train-limit --train-per-class one of them" -- "$tool" "$fashion_mnist" d --train-limit 10 --train-per-class 5
