#!/bin/sh
# make bench: runs the benchmark programs in <bin-dir> and prints one markdown table.
# usage: bench/run.sh <bin-dir>   (THREADS=n, default 2; REPS=n, default 2)
set -eu
BIN=$1
THREADS=${THREADS:-2}
REPS=${REPS:-2}
CFG=$(cd "$(dirname "$0")/../cfg" && pwd)
RAW=$(mktemp)
trap 'rm -f "$RAW"' EXIT

# A python3 that can import torch: the one on PATH may be a separate build without it.
PY=
for p in "$(command -v python3 || true)" /usr/bin/python3; do
    if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import torch' 2>/dev/null; then PY=$p; break; fi
done

echo "running the TaT layers (bench_tat) ..." >&2
OPENBLAS_NUM_THREADS=$THREADS TAT_NUM_THREADS=$THREADS "$BIN/bench_tat" -t "$THREADS" -r "$REPS" >>"$RAW"
if [ -n "$PY" ]; then
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

echo
echo "Machine: $CPU, $CORES cores, $MEM; OpenBLAS $BLASV; PyTorch $TORCHV; $THREADS threads everywhere."
echo
awk -v T="$THREADS" '
$1 == "peak" { peak[$2] = $3 }
$1 == "tat" { n++; name[n] = $2; batch[$2] = $3; ms[$2] = $5; gf[$2] = $6; rate[$2] = $7; emb[$2] = $8; att[$2] = $9 }
$1 == "torch" { torch[$2] = $3 }
$1 == "fashion" { fs = $2; ft = $3; fd = $4 }
$1 == "train" { ips[$2, "t"] = $3; ips[$2, "d"] = $4; rss[$2] = $5 }
END {
    printf "| measurement | ours | work | of sgemm peak | PyTorch | PyTorch / ours | target |\n"
    printf "|---|---|---|---|---|---|---|\n"
    printf "| sgemm peak, 1 thread (OpenBLAS, 2048^3) | %.1f GFLOP/s | | | | | |\n", peak[1]
    printf "| sgemm peak, %d threads | %.1f GFLOP/s | | | | | |\n", T, peak[T]
    for (i = 1; i <= n; i++) {
        s = name[i]
        tgt = (s == "voc-r18") ? "<= 150 ms; >= 60% peak; >= 5x PyTorch" : ">= 5x PyTorch"
        pt = (s in torch) ? sprintf("%.1f ms", torch[s]) : "n/a"
        pr = (s in torch) ? sprintf("%.1fx", torch[s] / ms[s]) : "n/a"
        printf "| TaT %s fwd+bwd per image (batch %d; embeddings %.1f ms + terms %.1f ms) | %.1f ms | %.2f GFLOP | %.0f%% | %s | %s | %s |\n", \
            s, batch[s], emb[s], att[s], ms[s], gf[s], 100 * rate[s] / peak[T], pt, pr, tgt
    }
    printf "| Fashion-MNIST student step alone (batch 128) | %.2f ms | | | | | |\n", 1e3 * fs
    printf "| Fashion-MNIST teacher forward alone | %.2f ms | | | | | |\n", 1e3 * ft
    printf "| Fashion-MNIST distill step (teacher fwd + student + TaT) | %.2f ms | | | | | |\n", 1e3 * fd
    printf "| distill / (teacher forward + student step) | %.2fx | | | | | <= 1.15x |\n", fd / (ft + fs)
    printf "| training, stock Darknet gemm: teacher cfg / distill step | %.0f / %.0f images/s (peak RSS %.0f MiB) | | | | | |\n", ips["stock", "t"], ips["stock", "d"], rss["stock"]
    printf "| training, OpenBLAS gemm: teacher cfg / distill step | %.0f / %.0f images/s (peak RSS %.0f MiB) | | | | | |\n", ips["blas", "t"], ips["blas", "d"], rss["blas"]
    printf "| BLAS / stock training speed: teacher cfg / distill step | %.1fx / %.1fx | | | | | >= 2.5x |\n", ips["blas", "t"] / ips["stock", "t"], ips["blas", "d"] / ips["stock", "d"]
}' "$RAW"
