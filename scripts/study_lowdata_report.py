#!/usr/bin/env python3
"""Table and plots of scripts/study-lowdata.sh's runs (docs/study-protocol.md).

Reads <results>/runs/<subset>-<none|rest>/<method>/seed<N>/{top1.tsv,seconds}; writes
<docs>/results-lowdata.md, <docs>/study-lowdata-<subset>.png and <results>/confirm-setting
(the setting chosen on the held-out split for the confirmation seeds). The table uses the
final weights of every run; the test set chooses nothing.
"""
import argparse
import math
import os
import statistics
import sys

METHODS = ["student", "kd", "fitnet", "tat", "tat-kd"]
LABELS = {
    "student": "student alone",
    "kd": "KD, logits (Hinton)",
    "fitnet": "FitNet, one-to-one features",
    "tat": "TaT one-to-all",
    "tat-kd": "TaT one-to-all + KD",
}
CONTROL_LABEL = "student alone, batch-composition control (KD weight 0)"
SUBSETS = ["1k", "5k"]
CONDITIONS = ["none", "rest"]
COND_LABELS = {"none": "labelled only", "rest": "+ unlabelled rest"}
COLOURS = dict(zip(METHODS, ["tab:gray", "tab:orange", "tab:green", "tab:blue", "tab:red"]))
FIRST_SEEDS = {1, 2, 3}
CONFIRM_SEEDS = {4, 5}


def read_run(path):
    run = {"epochs": {}, "final": None, "holdout": None, "seconds": None}
    with open(os.path.join(path, "top1.tsv")) as f:
        next(f)
        for line in f:
            key, test, held = line.split()
            if key == "final":
                run["final"], run["holdout"] = float(test), float(held)
            else:
                run["epochs"][int(key)] = (float(test), float(held))
    with open(os.path.join(path, "seconds")) as f:
        run["seconds"] = float(f.read())
    return run


def read_runs(results):
    """{(subset, condition, method): {seed: run}} of the finished runs."""
    runs = {}
    for s in SUBSETS:
        for c in CONDITIONS:
            for m in METHODS:
                mdir = os.path.join(results, "runs", "%s-%s" % (s, c), m)
                if not os.path.isdir(mdir):
                    continue
                seeds = {}
                for d in sorted(os.listdir(mdir)):
                    if d.startswith("seed") and os.path.exists(os.path.join(mdir, d, "done")):
                        seeds[int(d[4:])] = read_run(os.path.join(mdir, d))
                if seeds:
                    runs[(s, c, m)] = seeds
    return runs


def stats(values):
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return mean, std


def pct(x):
    return "%.2f" % (100 * x)


def in_stds(diff, std):
    if not (std > 0) or math.isnan(std):
        return ""
    return "%+.1f" % (diff / std)


def first(seeds):
    return {k: v for k, v in seeds.items() if k in FIRST_SEEDS}


def table(runs):
    lines = ["| labelled | unlabelled | method | seeds | test top-1 mean (%) | std | min - max | "
             "vs. student alone (points) | in its stds | held-out mean (%) | wall time per run (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in SUBSETS:
        ref = first(runs.get((s, "none", "student"), {}))
        ref_mean, ref_std = stats([r["final"] for r in ref.values()]) if ref else (None, None)
        for c in CONDITIONS:
            for m in METHODS:
                seeds = first(runs.get((s, c, m), {}))
                if not seeds:
                    continue
                finals = [r["final"] for r in seeds.values()]
                mean, std = stats(finals)
                held, _ = stats([r["holdout"] for r in seeds.values()])
                is_ref = (c, m) == ("none", "student")
                diff = "" if is_ref or ref_mean is None else "%+.2f" % (100 * (mean - ref_mean))
                units = "" if is_ref or ref_mean is None else in_stds(mean - ref_mean, ref_std)
                label = CONTROL_LABEL if (c, m) == ("rest", "student") else LABELS[m]
                lines.append("| %s | %s | %s | %s | %s | %s | %s - %s | %s | %s | %s | %.0f |" % (
                    s, COND_LABELS[c], label, ", ".join(str(k) for k in sorted(seeds)), pct(mean),
                    pct(std), pct(min(finals)), pct(max(finals)), diff, units, pct(held),
                    statistics.mean(r["seconds"] for r in seeds.values())))
    return "\n".join(lines)


def beyond_spread(finals, ref_finals):
    """The protocol's rule: mean >= reference mean + 2 reference stds, worst > reference best."""
    ref_mean, ref_std = stats(ref_finals)
    if not (ref_std > 0):
        return False
    return statistics.mean(finals) >= ref_mean + 2 * ref_std and min(finals) > max(ref_finals)


def verdicts(runs):
    lines = []
    for s in SUBSETS:
        ref = first(runs.get((s, "none", "student"), {}))
        if len(ref) < 2:
            continue
        ref_finals = [r["final"] for r in ref.values()]
        for c in CONDITIONS:
            for m in METHODS:
                if m == "student":
                    continue
                seeds = first(runs.get((s, c, m), {}))
                if not seeds:
                    continue
                ok = beyond_spread([r["final"] for r in seeds.values()], ref_finals)
                lines.append("- %s, %s, %s: %s" % (s, COND_LABELS[c], LABELS[m],
                                                   "gains beyond the spread" if ok else "within the spread"))
    return lines


def choose_confirmation(runs):
    """The distilled setting with the largest held-out gain in reference held-out stds."""
    best = None
    for s in SUBSETS:
        ref = first(runs.get((s, "none", "student"), {}))
        if len(ref) < 2:
            continue
        ref_mean, ref_std = stats([r["holdout"] for r in ref.values()])
        for c in CONDITIONS:
            for m in METHODS:
                seeds = first(runs.get((s, c, m), {}))
                if m == "student" or not seeds:
                    continue
                gain = statistics.mean(r["holdout"] for r in seeds.values()) - ref_mean
                if ref_std > 0:
                    score = gain / ref_std
                else:  # every reference seed alike: the sign of the gain alone
                    score = math.copysign(float("inf"), gain) if gain else 0.0
                cost = statistics.mean(r["seconds"] for r in seeds.values())
                key = (score, -cost)
                if best is None or key > best[0]:
                    best = (key, (s, c, m), gain, ref_std)
    return best


def confirmation(runs, chosen):
    if chosen is None:
        return ["No setting could be chosen (the reference needs at least 2 seeds)."]
    _, (s, c, m), gain, ref_std = chosen
    lines = ["Chosen on the held-out split: %s labelled, %s, %s (held-out gain %+.2f points, %s reference stds)."
             % (s, COND_LABELS[c], LABELS[m], 100 * gain, in_stds(gain, ref_std) or "n/a")]
    seeds = runs.get((s, c, m), {})
    extra = {k: v for k, v in seeds.items() if k in CONFIRM_SEEDS}
    if not extra:
        lines.append("Seeds 4 and 5: not run yet (`make study-lowdata LOWDATA_CONFIRM=1`).")
        return lines
    ref_finals = [r["final"] for r in first(runs[(s, "none", "student")]).values()]
    all_finals = [r["final"] for r in seeds.values()]
    mean, std = stats(all_finals)
    holds = (len(extra) == 2 and all(r["final"] > max(ref_finals) for r in extra.values())
             and beyond_spread(all_finals, ref_finals))
    lines.append("Seeds %s: test top-1 %s (reference best %s). All %d seeds: mean %s, std %s, %s reference stds "
                 "above the reference mean. The confirmation %s." % (
                     ", ".join(str(k) for k in sorted(extra)),
                     ", ".join(pct(extra[k]["final"]) for k in sorted(extra)), pct(max(ref_finals)),
                     len(all_finals), pct(mean), pct(std),
                     in_stds(mean - statistics.mean(ref_finals), statistics.stdev(ref_finals)) or "n/a",
                     "holds" if holds else "does not hold"))
    return lines


def plots(runs, docs):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for s in SUBSETS:
        keys = [(c, m) for c in CONDITIONS for m in METHODS if first(runs.get((s, c, m), {}))]
        if not keys:
            continue
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
        for c, m in keys:
            seeds = first(runs[(s, c, m)])
            epochs = sorted(set.intersection(*(set(r["epochs"]) for r in seeds.values())))
            if not epochs:
                continue
            means = [100 * statistics.mean(r["epochs"][e][0] for r in seeds.values()) for e in epochs]
            label = (CONTROL_LABEL if (c, m) == ("rest", "student") else LABELS[m]) + ", " + COND_LABELS[c]
            ax.plot(epochs, means, marker="o", ms=3, label=label, color=COLOURS[m],
                    linestyle="-" if c == "none" else "--")
        ax.set_xlabel("epoch (images drawn / labelled images)")
        ax.set_ylabel("top-1 on the test set (%)")
        ax.set_title("%s labelled images: mean over seeds 1-3" % s, fontsize=9)
        ax.grid(alpha=.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = "study-lowdata-%s.png" % s
        fig.savefig(os.path.join(docs, name), dpi=110)
        plt.close(fig)
        written.append(name)
    return written


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--results", default="results/lowdata")
    p.add_argument("--docs", default="docs")
    p.add_argument("--iters", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--fraction", default="0.5")
    p.add_argument("--smoke", default="0")
    p.add_argument("--narrowed", default="")
    a = p.parse_args()
    runs = read_runs(a.results)
    if not runs:
        sys.exit("study_lowdata_report: no finished runs under %s/runs" % a.results)
    with open(os.path.join(a.results, "teacher-top1")) as f:
        teacher = f.read().strip()
    os.makedirs(a.docs, exist_ok=True)
    images = plots(runs, a.docs)
    body = table(runs)
    chosen = choose_confirmation(runs)
    if chosen is not None:
        with open(os.path.join(a.results, "confirm-setting"), "w") as f:
            f.write("%s %s %s\n" % chosen[1])
    out = ["# Where distillation pays: the low-data study", ""]
    if a.smoke == "1":
        out += ["**SMOKE RUN: a tiny check of the script (a few iterations, tiny subsets, a teacher of "
                "its own). These numbers are not study results.**", ""]
    if a.narrowed:
        out += ["**Narrowed: %s. Not the protocol's full table.**" % a.narrowed.replace(";", "; "), ""]
    out += ["Written by `make study-lowdata` (`scripts/study-lowdata.sh`, `scripts/study_lowdata_report.py`) "
            "following [study-protocol.md](study-protocol.md): %d iterations of %d images, unlabelled fraction %s, "
            "teacher top-1 %s%%. Test top-1 of the final weights; the reference is the student alone on the same "
            "labelled subset without unlabelled images; std over the seeds (n - 1)."
            % (a.iters, a.batch, a.fraction, pct(float(teacher)) if teacher else "?"), "",
            body, "", "## Decision rule (test mean >= reference + 2 stds, worst seed > reference best)", ""]
    out += verdicts(runs) or ["(the reference needs at least 2 seeds)"]
    out += ["", "## Confirmation seeds", ""] + confirmation(runs, chosen) + [""]
    out += ["![top-1 per epoch, %s](%s)" % (n[len("study-lowdata-"):-4], n) for n in images]
    with open(os.path.join(a.docs, "results-lowdata.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    print(body)


if __name__ == "__main__":
    main()
