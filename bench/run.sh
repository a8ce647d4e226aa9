#!/bin/sh
# make bench: runs the benchmark programs in <bin-dir> and prints two markdown tables (the
# distillation math; the whole distillation steps against PyTorch).
# usage: bench/run.sh <bin-dir>   (THREADS=n, default 2; REPS=n, default 2; FULL=0 leaves out
# the full one-to-all rows, which take a few minutes; TORCH=0 the PyTorch column; PAIRS=n
# interleaved ours/PyTorch runs per step row, default 2; STEPS=n timed steps per run, default 3;
# QUICK=1: FULL=0, PAIRS=1, STEPS=2 and no batch-32 row; MATH=0: the step table alone)
set -eu
BIN=$1
THREADS=${THREADS:-2}
# what the darknet start-up sets for the waiting OpenMP and OpenBLAS threads (docs/performance.md);
# the benchmark programs do not run that start-up. PyTorch's runs get the same environment.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} OPENBLAS_THREAD_TIMEOUT=${OPENBLAS_THREAD_TIMEOUT:-4}
export OMP_NUM_THREADS=$THREADS
REPS=${REPS:-2}
QUICK=${QUICK:-0}
MATH=${MATH:-1}
PAIRS=${PAIRS:-$([ "$QUICK" = 1 ] && echo 1 || echo 2)}
STEPS=${STEPS:-$([ "$QUICK" = 1 ] && echo 2 || echo 3)}
TOP=$(cd "$(dirname "$0")/.." && pwd)
CFG=$TOP/cfg
RAW=$(mktemp)
WORK=$(mktemp -d)
trap 'rm -rf "$RAW" "$WORK"' EXIT

# A python3 that can import torch: the one on PATH may be a separate build without it.
PY=
for p in "$(command -v python3 || true)" /usr/bin/python3; do
    if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import torch' 2>/dev/null; then PY=$p; break; fi
done

FULL=${FULL:-$([ "$QUICK" = 1 ] && echo 0 || echo 1)}
HAVE_TORCH=0
[ -n "$PY" ] && [ "${TORCH:-1}" = 1 ] && "$PY" -c 'import torchvision' 2>/dev/null && HAVE_TORCH=1

if [ "$MATH" = 1 ]; then
    echo "running the TaT layers (bench_tat) ..." >&2
    OPENBLAS_NUM_THREADS=$THREADS TAT_NUM_THREADS=$THREADS "$BIN/bench_tat" -t "$THREADS" -r "$REPS" >>"$RAW"
    if [ "$FULL" = 1 ]; then
        # one process each: its peak RSS is its own; one timed repetition (each is ~1 TFLOP)
        for mode in streaming materialized; do
            echo "running the full one-to-all form at 129x129x256, $mode ..." >&2
            OPENBLAS_NUM_THREADS=$THREADS TAT_NUM_THREADS=$THREADS "$BIN/bench_tat" -n -t "$THREADS" -r 1 -s "full-$mode" >>"$RAW"
        done
    fi
    if [ -n "$PY" ] && [ "${TORCH:-1}" = 1 ]; then
        echo "running the same math in PyTorch ..." >&2
        OMP_NUM_THREADS=$THREADS "$PY" "$(dirname "$0")/bench_tat_torch.py" "$THREADS" "$REPS" >>"$RAW"
    else
        echo "no python3 with torch found: PyTorch column skipped" >&2
    fi
else
    "$BIN/bench_tat" -b >>"$RAW"
fi

# ---- the whole distillation steps, ours against PyTorch's, interleaved ------------------------
# ImageNet setting: the shipped cfgs, random torchvision weights converted for Darknet (the
# PyTorch runs load the same state dicts); Fashion-MNIST: the demo's cfgs, random weights.
# *-kd rows (ours only): the step with logit KD alone, no [tat_distill]: the two-network loop's
# own cost, apart from the TaT section's work
STEP_ROWS="in-step-8 in-teacher-8 in-student-8 in-step-kd-8 fa-step fa-teacher fa-student fa-step-kd"
[ "$QUICK" = 1 ] || STEP_ROWS="in-step-8 in-step-32 in-teacher-8 in-student-8 in-step-kd-8 fa-step fa-teacher fa-student fa-step-kd"
TEACHER=$CFG/imagenet-resnet34-teacher.cfg
# timed steps per run: a Fashion-MNIST step is ~1/20 of an ImageNet one
steps_of() { case $1 in fa-*) echo $((STEPS * 5)) ;; *) echo "$STEPS" ;; esac; }
# one run of a row, its output line prefixed with the row's name
run_row() {
    "$@" >"$WORK/out" || { echo "bench/run.sh: $* failed:" >&2; tail -n 5 "$WORK/log" >&2; exit 1; }
    sed "s/^/$2 /" "$WORK/out" >>"$RAW"
}
ours() {
    row=$1
    case $1 in
    in-step-kd-8) set -- step "$WORK/imagenet-student-kd.cfg" "$TEACHER" "$WORK/teacher.weights" "$WORK/student.weights" 8 ;;
    in-step-unfolded-8) set -- step-unfolded "$WORK/imagenet-student.cfg" "$TEACHER" "$WORK/teacher.weights" "$WORK/student.weights" 8 ;;
    in-step-*) set -- step "$WORK/imagenet-student.cfg" "$TEACHER" "$WORK/teacher.weights" "$WORK/student.weights" "${1#in-step-}" ;;
    in-teacher-8) set -- teacher "$TEACHER" - "$WORK/teacher.weights" - 8 ;;
    in-teacher-unfolded-8) set -- teacher-unfolded "$TEACHER" - "$WORK/teacher.weights" - 8 ;;
    in-student-8) set -- student "$WORK/imagenet-student-alone.cfg" - - "$WORK/student.weights" 8 ;;
    fa-step) set -- step "$CFG/fashion-student-tat.cfg" "$CFG/fashion-teacher.cfg" - - 128 ;;
    fa-step-kd) set -- step "$CFG/fashion-student-kd.cfg" "$CFG/fashion-teacher.cfg" - - 128 ;;
    fa-teacher) set -- teacher "$CFG/fashion-teacher.cfg" - - - 128 ;;
    fa-teacher-unfolded) set -- teacher-unfolded "$CFG/fashion-teacher.cfg" - - - 128 ;;
    fa-student) set -- student "$CFG/fashion-student.cfg" - - - 128 ;;
    esac
    OPENBLAS_NUM_THREADS=$THREADS TAT_NUM_THREADS=$THREADS "$BIN/bench_distill" "$@" "$(steps_of "$row")" 2>>"$WORK/log"
}
theirs() {
    row=$1
    case $1 in
    in-step-*) set -- step imagenet "${1#in-step-}" ;;
    in-teacher-8) set -- teacher imagenet 8 ;;
    in-student-8) set -- student imagenet 8 ;;
    fa-step) set -- step fashion 128 ;;
    fa-teacher) set -- teacher fashion 128 ;;
    fa-student) set -- student fashion 128 ;;
    esac
    OMP_NUM_THREADS=$THREADS "$PY" "$TOP/bench/bench_distill_torch.py" "$1" "$2" "$3" "$(steps_of "$row")" "$THREADS" "$WORK" 2>>"$WORK/log"
}
if [ -n "$PY" ] && "$PY" -c 'import torchvision' 2>/dev/null; then
    echo "converting random torchvision ResNet-34 / ResNet-18 weights for the ImageNet rows ..." >&2
    "$PY" "$TOP/bench/bench_distill_torch.py" prepare "$WORK" 2>>"$WORK/log"
    awk '/^\[tat_distill\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' "$WORK/imagenet-student.cfg" >"$WORK/imagenet-student-kd.cfg"
else
    echo "no python3 with torch and torchvision found: the ImageNet rows are skipped" >&2
    STEP_ROWS="fa-step fa-teacher fa-student fa-step-kd"
fi
case " $STEP_ROWS " in *" in-step-8 "*) ONCE="in-step-unfolded-8 in-teacher-unfolded-8 fa-teacher-unfolded" ;; *) ONCE="fa-teacher-unfolded" ;; esac
for pair in $(seq "$PAIRS"); do
    for row in $STEP_ROWS; do
        echo "step rows, run $pair of $PAIRS: $row ..." >&2
        run_row ours "$row"
        case $row in *-kd*) ;; *) [ "$HAVE_TORCH" = 0 ] || run_row theirs "$row" ;; esac
    done
done
for row in $ONCE; do
    echo "the teacher as it ran before (BatchNorm unfolded, backward buffers kept): $row ..." >&2
    run_row ours "$row"
done

if [ "$MATH" = 1 ]; then
    echo "training with this build (OpenBLAS, oneDNN) and with Darknet's stock gemm and convolutions ..." >&2
    OPENBLAS_NUM_THREADS=$THREADS TAT_NUM_THREADS=$THREADS "$BIN/bench_fashion" train "$CFG" 20 | sed 's/^train/train blas/' >>"$RAW"
    TAT_NUM_THREADS=$THREADS "$BIN/bench_fashion_noblas" train "$CFG" 5 | sed 's/^train/train stock/' >>"$RAW"
fi

CPU=$(sed -n 's/^model name[^:]*: *//p' /proc/cpuinfo | head -n 1)
CORES=$(nproc)
MEM=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
BLASV=$(dpkg-query -W -f '${Version}' libopenblas0-pthread 2>/dev/null || echo '?')
TORCHV=$([ -n "$PY" ] && "$PY" -c 'import torch; print(torch.__version__)' || echo none)

AVX=none
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && AVX=avx2
grep -qw avx512f /proc/cpuinfo && AVX=avx512

echo
echo "Machine: $CPU, $CORES cores, $MEM; OpenBLAS $BLASV; PyTorch $TORCHV; $THREADS threads everywhere."
sed -n 's/^blas //p' "$RAW" | head -n 1
[ "$MATH" = 1 ] && echo && awk -v T="$THREADS" -v AVX="$AVX" '
function met(ok) { return ok ? "yes" : "**no**" }
# the two peak rows of one library; returns the T-thread peak the shares may use: a T-thread
# peak below the 1-thread one is a disturbed measurement, and then T times the 1-thread peak
# (what T threads could at best do) is used, never it
function peak_rows(lib, one, many) {
    printf "| sgemm peak, 1 thread (%s, 2048^3, best of 5 runs) | %.1f GFLOP/s | | | | | | |\n", lib, one
    if (T > 1 && many < one) {
        printf "| sgemm peak, %d threads (%s) | %.1f GFLOP/s: **below the 1-thread peak (a disturbed run), not used**; shares below are of %d x the 1-thread peak | | | | | | |\n", T, lib, many, T
        return T * one
    }
    printf "| sgemm peak, %d threads (%s, best of 5 runs) | %.1f GFLOP/s | | | | | | |\n", T, lib, many
    return many
}
$1 == "blas" { core = $0; sub(/.*; core /, "", core); sub(/ .*/, "", core) }
$1 == "peak" { peak[$2] = $3 }
$1 == "peak-onednn" { dpeak[$2] = $3 }
$1 == "mem" { rss[$2] = $3; extra[$2] = $4 }
$1 == "tat" && $2 ~ /^full-/ { full[$2] = 1; ms[$2] = $5; gf[$2] = $6; rate[$2] = $7; att[$2] = $9 }
$1 == "tat" && $2 !~ /^full-/ { n++; name[n] = $2; batch[$2] = $3; ms[$2] = $5; gf[$2] = $6; rate[$2] = $7; emb[$2] = $8; att[$2] = $9 }
$1 == "torch" { torch[$2] = $3 }
$1 == "train" { ips[$2, "t"] = $3; ips[$2, "d"] = $4; trss[$2] = $5 }
END {
    printf "| measurement | ours | work | of the faster sgemm peak | PyTorch | PyTorch / ours | target | met |\n"
    printf "|---|---|---|---|---|---|---|---|\n"
    generic = (core !~ /^(Haswell|Zen|SkylakeX|Cooperlake|SapphireRapids)$/)
    printf "| BLAS core (CPU: %s) | %s | | | | | never generic on a CPU with AVX2 or AVX-512 | %s |\n", AVX, core, met(AVX == "none" || !generic)
    peak[T] = peak_rows("OpenBLAS", peak[1], peak[T])
    # a oneDNN build runs the largest products of the math on the sgemm of oneDNN (as the
    # layers do): the shares are of the faster peak of the two libraries
    if (1 in dpeak) {
        dpeak[T] = peak_rows("oneDNN", dpeak[1], dpeak[T])
        if (dpeak[T] > peak[T]) peak[T] = dpeak[T]
    }
    for (i = 1; i <= n; i++) {
        s = name[i]
        pt = (s in torch) ? sprintf("%.1f ms", torch[s]) : "n/a"
        pr = (s in torch) ? sprintf("%.1fx", torch[s] / ms[s]) : "n/a"
        frac = rate[s] / peak[T]
        if (s == "imagenet") { tgt = ">= 1.2x PyTorch"; ok = (s in torch) && torch[s] / ms[s] >= 1.2 }
        else if (s == "voc-r18") { tgt = ">= 70% peak"; ok = frac >= 0.70 }
        else { tgt = ">= 60% peak"; ok = frac >= 0.60 }
        printf "| TaT %s fwd+bwd per image (batch %d; embeddings %.1f ms + terms %.1f ms) | %.1f ms | %.2f GFLOP | %.0f%% | %s | %s | %s | %s |\n", \
            s, batch[s], emb[s], att[s], ms[s], gf[s], 100 * frac, pt, pr, tgt, met(ok)
    }
    if (("full-streaming" in full) && ("full-materialized" in full)) {
        s = "full-streaming"; m = "full-materialized"
        printf "| TaT full one-to-all 129x129x256 fwd+bwd per image, materialised (batch 2, learned key; peak RSS %.0f MiB, terms %.0f MiB) | %.0f ms | %.1f GFLOP | %.0f%% | | | | |\n", \
            rss[m], extra[m], ms[m], gf[m], 100 * rate[m] / peak[T]
        ok = extra[s] * 16 <= extra[m] && rate[s] / peak[T] >= 0.60
        printf "| TaT full one-to-all, streaming (peak RSS %.0f MiB, terms %.0f MiB = 1/%.0f of materialised) | %.0f ms | %.1f GFLOP | %.0f%% | | | terms <= 1/16 of materialised; >= 60%% peak | %s |\n", \
            rss[s], extra[s], (extra[s] > 0 ? extra[m] / extra[s] : 0), ms[s], gf[s], 100 * rate[s] / peak[T], met(ok)
    }
    printf "| training, Darknet as it ships (stock gemm and convolutions): teacher cfg / distill step | %.0f / %.0f images/s (peak RSS %.0f MiB) | | | | | | |\n", ips["stock", "t"], ips["stock", "d"], trss["stock"]
    printf "| training, this build (OpenBLAS gemm, oneDNN convolutions where built): teacher cfg / distill step | %.0f / %.0f images/s (peak RSS %.0f MiB) | | | | | | |\n", ips["blas", "t"], ips["blas", "d"], trss["blas"]
    r = ips["blas", "t"] / ips["stock", "t"]
    printf "| this build / stock training speed: teacher cfg / distill step | %.1fx / %.1fx | | | | | >= 2.5x | %s |\n", r, ips["blas", "d"] / ips["stock", "d"], met(r >= 2.5)
}' "$RAW"

# the whole distillation steps: medians of the interleaved runs
echo
awk '
function median(list,    v, n, i, j, x) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { x = v[j]; v[j] = v[j - 1]; v[j - 1] = x }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function met(ok) { return ok ? "yes" : "**no**" }
function has(r) { return (r, "o") in ms }
$2 == "distill" || $2 == "torch" {
    side = $2 == "distill" ? "o" : "t"
    ms[$1, side] = ms[$1, side] " " $5; bs[$1] = $4
    if ($6 > rss[$1, side]) rss[$1, side] = $6
    if (side == "o") res[$1] = $7
}
function ms_of(r, side) { return ((r, side) in ms) ? median(ms[r, side]) : 0 }
function step_row(r, what, tgt,    o, t) {
    if (!has(r)) return
    o = ms_of(r, "o"); t = ms_of(r, "t")
    printf "| %s | %.0f ms (%.1f ms/image) | %s | %s | %.0f / %s MiB | %s | %s |\n", what, o, o / bs[r], \
        t ? sprintf("%.0f ms (%.1f ms/image)", t, t / bs[r]) : "n/a", t ? sprintf("%.2fx", o / t) : "n/a", \
        rss[r, "o"], t ? sprintf("%.0f", rss[r, "t"]) : "n/a", tgt ? "<= 0.8x PyTorch" : "", tgt ? (t ? met(o / t <= 0.8) : "n/a") : ""
}
function overhead_row(s, t, st, what,    o, p) {
    if (!has(s) || !has(t) || !has(st)) return
    o = ms_of(s, "o") / (ms_of(t, "o") + ms_of(st, "o"))
    p = ms_of(t, "t") ? sprintf("%.2fx", ms_of(s, "t") / (ms_of(t, "t") + ms_of(st, "t"))) : "n/a"
    printf "| %s | %.2fx | %s | | | <= 1.05x | %s |\n", what, o, p, met(o <= 1.05)
}
function loop_row(s, t, st, what,    o) {
    if (!has(s) || !has(t) || !has(st)) return
    o = ms_of(s, "o") / (ms_of(t, "o") + ms_of(st, "o"))
    printf "| %s | %.2fx | n/a | | | | |\n", what, o
}
function teacher_memory_row(t, u, what) {
    if (!has(t) || !has(u)) return
    printf "| %s | %.0f MiB, %.0f ms | | | | | |\n", what, res[u], ms_of(u, "o")
    printf "| ... as an inference network (BatchNorm folded, no backward buffers) | %.0f MiB (%.0f%% of it), %.0f ms | | | | | |\n", res[t], 100 * res[t] / res[u], ms_of(t, "o")
}
END {
    printf "| distillation step (%d threads, median of the interleaved runs) | ours | PyTorch | ours / PyTorch | peak RSS ours / PyTorch | target | met |\n", T
    printf "|---|---|---|---|---|---|---|\n"
    step_row("in-step-8", "ImageNet setting, whole step, batch 8 (ResNet-34 fwd; ResNet-18 fwd + bwd + AdamW; TaT + KD)", 1)
    step_row("in-step-32", "ImageNet setting, whole step, batch 32", 1)
    step_row("in-teacher-8", "ImageNet teacher forward alone, batch 8", 0)
    step_row("in-student-8", "ImageNet student step alone, batch 8", 0)
    overhead_row("in-step-8", "in-teacher-8", "in-student-8", "ImageNet distill step / (teacher forward + student step), batch 8")
    step_row("in-step-kd-8", "... the same step with logit KD only (no [tat_distill])", 0)
    loop_row("in-step-kd-8", "in-teacher-8", "in-student-8", "... KD-only step / (teacher forward + student step): the two-network loop itself")
    if (has("in-step-unfolded-8") && has("in-step-8"))
        printf "| ImageNet step peak RSS, batch 8, against the teacher unfolded (as before) | %.0f MiB (before: %.0f MiB, %.0f ms) | | | | not above before | %s |\n", \
            rss["in-step-8", "o"], rss["in-step-unfolded-8", "o"], ms_of("in-step-unfolded-8", "o"), met(rss["in-step-8", "o"] <= rss["in-step-unfolded-8", "o"])
    teacher_memory_row("in-teacher-8", "in-teacher-unfolded-8", "ImageNet teacher resident (VmRSS after a forward), batch 8, unfolded as before")
    step_row("fa-step", "Fashion-MNIST demo step, batch 128 (teacher fwd; student fwd + bwd + SGD; TaT)", 1)
    step_row("fa-teacher", "Fashion-MNIST teacher forward alone", 0)
    step_row("fa-student", "Fashion-MNIST student step alone", 0)
    overhead_row("fa-step", "fa-teacher", "fa-student", "Fashion-MNIST distill step / (teacher forward + student step)")
    step_row("fa-step-kd", "... the same step with logit KD only (`make demo`'"'"'s cfg/fashion-student-kd.cfg)", 0)
    loop_row("fa-step-kd", "fa-teacher", "fa-student", "... KD-only step / (teacher forward + student step): the two-network loop itself")
    teacher_memory_row("fa-teacher", "fa-teacher-unfolded", "Fashion-MNIST teacher resident, batch 128, unfolded as before")
}' T="$THREADS" "$RAW"
