#!/bin/bash
# scripts/study-lowdata.sh end to end in its smoke mode (tiny subsets, 8 iterations, a teacher
# of its own; no study result), narrowed to two methods, one subset and two seeds: every run
# finishes with its top-1 file, the report's table has one row per setting with the mean and
# std of the runs' own numbers, the plot is written, the confirmation setting is chosen and
# its seeds 4 and 5 alone are run by LOWDATA_CONFIRM=1; an unknown method is refused; nothing is
# written into docs/. Needs DARKNET, build/tools/fashion_mnist_to_darknet, the Fashion-MNIST
# package and Debian's python3 with matplotlib.
set -u
: "${DARKNET:?DARKNET must point at the darknet binary}"
. "$(dirname "$0")/lib.sh"
need_fashion_mnist study_lowdata
if ! /usr/bin/python3 -c 'import matplotlib' 2> /dev/null; then
    echo "SKIP study_lowdata: no matplotlib for /usr/bin/python3 (make deps installs python3-matplotlib)"
    exit 0
fi
enter_tmp
docs_before=$(ls -l "$top/docs" | sha256sum)
smoke() {
    LOWDATA_SMOKE=1 LOWDATA_OUT="$tmp/out" LOWDATA_DOCS="$tmp/docs" DARKNET="$DARKNET" \
        FASHION_TOOL="${FASHION_TOOL:-$top/build/tools/fashion_mnist_to_darknet}" \
        LOWDATA_METHODS="student kd" LOWDATA_SUBSETS=1k LOWDATA_SEEDS="1 2" "$@"
}
smoke "$top/scripts/study-lowdata.sh" > smoke.log 2>&1
rc=$?
done_runs=$(find out/runs -name done | wc -l)
finals=$(find out/runs -name top1.tsv -exec grep -l '^final	0\.[0-9]*	0\.[0-9]*$' {} + | wc -l)
if [ "$rc" -eq 0 ] && [ "$done_runs" -eq 8 ] && [ "$finals" -eq 8 ]; then
    echo "PASS study_lowdata_smoke_runs"
else
    echo "FAIL study_lowdata_smoke_runs: exit $rc, $done_runs of 8 runs done, $finals with a final top-1; $(tail -n 2 smoke.log | tr '\n' ' ')"
    exit 0
fi

report=docs/results-lowdata.md
rows=$(grep -c '^| 1k | ' "$report")
# the student alone's row against its runs' own numbers, recomputed here
want=$(for s in 1 2; do sed -n 's/^final	\([0-9.]*\)	.*/\1/p' "out/runs/1k-none/student/seed$s/top1.tsv"; done |
    awk '{x[NR] = 100 * $1; s += x[NR]} END {m = s / NR; for (i = 1; i <= NR; ++i) v += (x[i] - m) ^ 2; printf "%.2f | %.2f", m, sqrt(v / (NR - 1))}')
if [ "$rows" -eq 4 ] && grep -q 'SMOKE RUN' "$report" && grep -q 'Narrowed' "$report" &&
    grep -q "^| 1k | labelled only | student alone | 1, 2 | $want |" "$report" &&
    grep -q 'batch-composition control' "$report" && [ "$(head -c 4 docs/study-lowdata-1k.png | tail -c 3)" = PNG ]; then
    echo "PASS study_lowdata_smoke_report"
else
    echo "FAIL study_lowdata_smoke_report: $rows rows, student alone want '$want': $(grep '^| 1k | labelled only | student alone' "$report")"
fi

read -r s c m < out/confirm-setting
smoke env LOWDATA_CONFIRM=1 "$top/scripts/study-lowdata.sh" > confirm.log 2>&1
rc=$?
seeds=$(ls "out/runs/$s-$c/$m" | tr '\n' ' ')
others=$(find out/runs -name 'seed[45]' | wc -l)
if [ "$rc" -eq 0 ] && [ "$seeds" = "seed1 seed2 seed4 seed5 " ] && [ "$others" -eq 2 ] && grep -q '^Seeds 4, 5: test top-1' "$report"; then
    echo "PASS study_lowdata_smoke_confirmation"
else
    echo "FAIL study_lowdata_smoke_confirmation: exit $rc, $s $c $m has '$seeds', $others confirmation runs in all; $(tail -n 1 confirm.log)"
fi

LOWDATA_METHODS=nonsense LOWDATA_SMOKE=1 LOWDATA_OUT="$tmp/out2" "$top/scripts/study-lowdata.sh" > bad.log 2>&1
if [ $? -ne 0 ] && grep -q 'unknown method nonsense' bad.log && [ ! -e out2/runs ]; then
    echo "PASS study_lowdata_unknown_method"
else
    echo "FAIL study_lowdata_unknown_method: $(tail -n 1 bad.log)"
fi
if [ "$(ls -l "$top/docs" | sha256sum)" = "$docs_before" ]; then
    echo "PASS study_lowdata_smoke_leaves_docs"
else
    echo "FAIL study_lowdata_smoke_leaves_docs: the smoke run changed docs/"
fi
