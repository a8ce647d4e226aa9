#!/bin/sh
# make bench: runs the benchmark programs in <bin-dir> and prints one markdown table.
# usage: bench/run.sh <bin-dir>   (THREADS=n, default 2; REPS=n, default 2; FULL=0 leaves out
# the full one-to-all rows, which take a few minutes; TORCH=0 the PyTorch column)
set -eu
BIN=$1
THREADS=${THREADS:-2}
# what the darknet start-up sets for the oneDNN backend's OpenMP threads (docs/performance.md);
# the benchmark programs do not run that start-up
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} OMP_NUM_THREADS=$THREADS
REPS=${REPS:-2}
CFG=$(cd "$(dirname "$0")/../cfg" && pwd)
RAW=$(mktemp)
trap 'rm -f "$RAW"' EXIT

# A python3 that can import torch: the one on PATH may be a separate build without it.
PY=
for p in "$(command -v python3 || true)" /usr/bin/python3; do
    if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import torch' 2>/dev/null; then PY=$p; break; fi
done

FULL=${FULL:-1}

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
echo "running Fashion-MNIST steps ..." >&2
OPENBLAS_NUM_THREADS=$THREADS TAT_NUM_THREADS=$THREADS "$BIN/bench_fashion" step "$CFG" 10 >>"$RAW"
echo "training with the BLAS gemm and with Darknet's stock gemm ..." >&2
OPENBLAS_NUM_THREADS=$THREADS TAT_NUM_THREADS=$THREADS "$BIN/bench_fashion" train "$CFG" 20 | sed 's/^train/train blas/' >>"$RAW"
TAT_NUM_THREADS=$THREADS "$BIN/bench_fashion_noblas" train "$CFG" 5 | sed 's/^train/train stock/' >>"$RAW"

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
echo
awk -v T="$THREADS" -v AVX="$AVX" '
function met(ok) { return ok ? "yes" : "**no**" }
$1 == "blas" { core = $0; sub(/.*; core /, "", core); sub(/ .*/, "", core) }
$1 == "peak" { peak[$2] = $3 }
$1 == "mem" { rss[$2] = $3; extra[$2] = $4 }
$1 == "tat" && $2 ~ /^full-/ { full[$2] = 1; ms[$2] = $5; gf[$2] = $6; rate[$2] = $7; att[$2] = $9 }
$1 == "tat" && $2 !~ /^full-/ { n++; name[n] = $2; batch[$2] = $3; ms[$2] = $5; gf[$2] = $6; rate[$2] = $7; emb[$2] = $8; att[$2] = $9 }
$1 == "torch" { torch[$2] = $3 }
$1 == "fashion" { fs = $2; ft = $3; fd = $4 }
$1 == "train" { ips[$2, "t"] = $3; ips[$2, "d"] = $4; trss[$2] = $5 }
END {
    printf "| measurement | ours | work | of sgemm peak | PyTorch | PyTorch / ours | target | met |\n"
    printf "|---|---|---|---|---|---|---|---|\n"
    generic = (core !~ /^(Haswell|Zen|SkylakeX|Cooperlake|SapphireRapids)$/)
    printf "| BLAS core (CPU: %s) | %s | | | | | never generic on a CPU with AVX2 or AVX-512 | %s |\n", AVX, core, met(AVX == "none" || !generic)
    printf "| sgemm peak, 1 thread (OpenBLAS, 2048^3) | %.1f GFLOP/s | | | | | | |\n", peak[1]
    printf "| sgemm peak, %d threads | %.1f GFLOP/s | | | | | | |\n", T, peak[T]
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
    printf "| Fashion-MNIST student step alone (batch 128) | %.2f ms | | | | | | |\n", 1e3 * fs
    printf "| Fashion-MNIST teacher forward alone | %.2f ms | | | | | | |\n", 1e3 * ft
    printf "| Fashion-MNIST distill step (teacher fwd + student + TaT) | %.2f ms | | | | | | |\n", 1e3 * fd
    printf "| distill / (teacher forward + student step) | %.2fx | | | | | <= 1.10x | %s |\n", fd / (ft + fs), met(fd / (ft + fs) <= 1.10)
    printf "| training, stock Darknet gemm: teacher cfg / distill step | %.0f / %.0f images/s (peak RSS %.0f MiB) | | | | | | |\n", ips["stock", "t"], ips["stock", "d"], trss["stock"]
    printf "| training, OpenBLAS gemm: teacher cfg / distill step | %.0f / %.0f images/s (peak RSS %.0f MiB) | | | | | | |\n", ips["blas", "t"], ips["blas", "d"], trss["blas"]
    r = ips["blas", "t"] / ips["stock", "t"]
    printf "| BLAS / stock training speed: teacher cfg / distill step | %.1fx / %.1fx | | | | | >= 2.5x | %s |\n", r, ips["blas", "d"] / ips["stock", "d"], met(r >= 2.5)
}' "$RAW"
