#!/usr/bin/env python3
"""Table and plots of scripts/study-fashion.sh's runs: docs/results.md, docs/study-*.png.

Reads results/study/runs/<method>/seed<N>/{top1.tsv,seconds,train.log}. The table uses the
final weights of every run (the last epoch); nothing is selected on the test set.
"""
import argparse
import os
import re
import statistics
import sys

LABELS = {
    "student": "student alone (no distillation)",
    "kd": "KD, logits (Hinton)",
    "fitnet": "FitNet, one-to-one features",
    "tat": "TaT one-to-all",
    "tat-patch": "TaT patch-group + anchor",
    "tat-kd": "TaT one-to-all + KD",
}
ORDER = ["student", "kd", "fitnet", "tat", "tat-patch", "tat-kd"]
# one colour per method in both plots (the loss plot has no "student")
COLOURS = dict(zip(ORDER, ["tab:gray", "tab:orange", "tab:green", "tab:blue", "tab:purple", "tab:red"]))
DISTILL_TERM = re.compile(r" (\w+)\[(\d+)\] ([-0-9.einfa]+), [-0-9.einfa]+ avg;")


def read_run(path):
    run = {"epochs": {}, "final": None, "seconds": None, "loss": []}
    with open(os.path.join(path, "top1.tsv")) as f:
        for line in f:
            key, value = line.split()
            if key == "final":
                run["final"] = float(value)
            else:
                run["epochs"][int(key)] = float(value)
    with open(os.path.join(path, "seconds")) as f:
        run["seconds"] = float(f.read())
    with open(os.path.join(path, "train.log")) as f:
        for line in f:
            if line.startswith("distill:") and " avg;" in line:
                run["loss"].append(sum(float(m.group(3)) for m in DISTILL_TERM.finditer(line)))
    return run


def read_runs(results):
    runs = {}
    base = os.path.join(results, "runs")
    for method in ORDER:
        mdir = os.path.join(base, method)
        if not os.path.isdir(mdir):
            continue
        seeds = sorted(d for d in os.listdir(mdir)
                       if os.path.exists(os.path.join(mdir, d, "done")))
        if seeds:
            runs[method] = {s: read_run(os.path.join(mdir, s)) for s in seeds}
    return runs


def fmt_pct(x):
    return "%.2f" % (100 * x)


def table(runs, teacher, iters):
    lines = ["| method | seeds | top-1 mean (%) | std | min - max | vs. student alone | wall time per run (s) |",
             "|---|---|---|---|---|---|---|"]
    base_mean = None
    if "student" in runs:
        base_mean = statistics.mean(r["final"] for r in runs["student"].values())
    for method in ORDER:
        if method not in runs:
            continue
        finals = [r["final"] for r in runs[method].values()]
        mean = statistics.mean(finals)
        std = statistics.stdev(finals) if len(finals) > 1 else float("nan")
        delta = "" if base_mean is None or method == "student" else "%+.2f" % (100 * (mean - base_mean))
        secs = statistics.mean(r["seconds"] for r in runs[method].values())
        lines.append("| %s | %s | %s | %s | %s - %s | %s | %.0f |" % (
            LABELS[method], ", ".join(s.replace("seed", "") for s in runs[method]), fmt_pct(mean),
            fmt_pct(std), fmt_pct(min(finals)), fmt_pct(max(finals)), delta, secs))
    lines.append("| teacher (cfg/fashion-teacher.cfg, for reference) | 1 | %s | | | | |" % fmt_pct(teacher))
    return "\n".join(lines)


def plots(runs, docs, iters_per_epoch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in ORDER:
        if method not in runs:
            continue
        epochs = sorted(set.intersection(*(set(r["epochs"]) for r in runs[method].values())))
        means = [statistics.mean(r["epochs"][e] for r in runs[method].values()) for e in epochs]
        lo = [min(r["epochs"][e] for r in runs[method].values()) for e in epochs]
        hi = [max(r["epochs"][e] for r in runs[method].values()) for e in epochs]
        ax.errorbar(epochs, [100 * m for m in means],
                    yerr=[[100 * (m - a) for m, a in zip(means, lo)], [100 * (b - m) for m, b in zip(means, hi)]],
                    marker="o", capsize=3, label=LABELS[method], color=COLOURS[method])
    ax.set_xlabel("epoch")
    ax.set_ylabel("top-1 on the 10k test set (%)")
    ax.set_title("mean over seeds; bars: min and max", fontsize=9)
    ax.set_xticks(sorted({e for m in runs.values() for r in m.values() for e in r["epochs"]}))
    ax.grid(alpha=.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(docs, "study-accuracy.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    bins = 10  # points per epoch
    for method in ORDER:
        if method not in runs or not all(r["loss"] for r in runs[method].values()):
            continue
        n = min(len(r["loss"]) for r in runs[method].values())
        width = max(1, iters_per_epoch // bins)
        xs, ys = [], []
        for start in range(0, n - width + 1, width):
            xs.append((start + width / 2) / iters_per_epoch)
            ys.append(statistics.mean(statistics.mean(r["loss"][start:start + width])
                                      for r in runs[method].values()))
        ax.plot(xs, ys, label=LABELS[method], color=COLOURS[method])
    ax.set_xlabel("epoch")
    ax.set_ylabel("distillation loss (sum of the terms)")
    ax.set_title("mean over seeds, per tenth of an epoch", fontsize=9)
    ax.set_yscale("log")
    ax.grid(alpha=.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(docs, "study-distill-loss.png"), dpi=110)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--results", default="results/study")
    p.add_argument("--docs", default="docs")
    p.add_argument("--iters", type=int, required=True)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--train-images", type=int, default=60000)
    a = p.parse_args()
    runs = read_runs(a.results)
    if not runs:
        sys.exit("study_report: no finished runs under %s/runs" % a.results)
    with open(os.path.join(a.results, "teacher-top1")) as f:
        teacher = float(f.read())
    os.makedirs(a.docs, exist_ok=True)
    iters_per_epoch = -(-a.train_images // a.batch)
    plots(runs, a.docs, iters_per_epoch)
    body = table(runs, teacher, a.iters)
    with open(os.path.join(a.docs, "results.md.in")) as f:
        template = f.read()
    text = template.replace("@TABLE@", body).replace("@ITERS@", str(a.iters)).replace(
        "@EPOCHS@", "%.2f" % (a.iters * a.batch / a.train_images))
    with open(os.path.join(a.docs, "results.md"), "w") as f:
        f.write(text)
    print(body)


if __name__ == "__main__":
    main()
