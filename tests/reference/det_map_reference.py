#!/usr/bin/env python3
"""Independent detection-metric reference for tests/test_det_metrics.c.

Reads a box file (one box a line: `gt <image> <class> <x1> <y1> <x2> <y2>` or
`det <image> <class> <score> <x1> <y1> <x2> <y2>`) and prints, per class,
`class <c> <ap50> <ap50_95> <recall50>` (`none` for a class without ground truth), then
`map <map50> <map50_95> <recall50>`. The rules, written from their definitions:
- VOC 2010+: detections by score (stable for ties), greedy match to the best-IoU box of the
  image and class, IoU >= t and not yet taken is a true positive; AP = area under the
  precision envelope over all recall steps;
- COCO-style: the same matching at t = 0.50 ... 0.95, 101 recall levels each, averaged.
"""
import struct
import sys


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def iou(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def precision_recall(dets, gts, cls, t):
    truth = [g for g in gts if g[1] == cls]
    if not truth:
        return None
    mine = sorted([d for d in dets if d[1] == cls], key=lambda d: -d[2])
    used = set()
    tp = 0
    precision, recall = [], []
    for k, d in enumerate(mine):
        best, at = -1.0, None
        for j, g in enumerate(gts):
            if g[1] != cls or g[0] != d[0]:
                continue
            o = iou(d[3:], g[2:])
            if o > best:
                best, at = o, j
        if at is not None and best >= t and at not in used:
            used.add(at)
            tp += 1
        precision.append(tp / (k + 1))
        recall.append(tp / len(truth))
    return precision, recall, tp / len(truth)


def envelope(precision):
    env = list(precision)
    for i in range(len(env) - 2, -1, -1):
        env[i] = max(env[i], env[i + 1])
    return env


def ap_all_points(precision, recall):
    env = envelope(precision)
    ap, last = 0.0, 0.0
    for p, r in zip(env, recall):
        ap += (r - last) * p
        last = r
    return ap


def ap_101(precision, recall):
    env = envelope(precision)
    total = 0.0
    for k in range(101):
        level = k / 100
        for p, r in zip(env, recall):
            if r >= level - 1e-12:
                total += p
                break
    return total / 101


def main(path):
    dets, gts, classes = [], [], 0
    for line in open(path):
        f = line.split()
        if not f:
            continue
        if f[0] == "gt":
            gts.append((int(f[1]), int(f[2])) + tuple(f32(float(v)) for v in f[3:7]))
        else:
            dets.append((int(f[1]), int(f[2]), f32(float(f[3])))
                        + tuple(f32(float(v)) for v in f[4:8]))
        classes = max(classes, int(f[2]) + 1)
    sums, n = [0.0, 0.0, 0.0], 0
    thresholds = [f32(f32(0.5) + f32(f32(0.05) * t)) for t in range(10)]
    for c in range(classes):
        pr = precision_recall(dets, gts, c, f32(0.5))
        if pr is None:
            print("class %d none" % c)
            continue
        ap50 = ap_all_points(pr[0], pr[1])
        coco = sum(ap_101(*precision_recall(dets, gts, c, t)[:2]) for t in thresholds) / 10
        print("class %d %.9f %.9f %.9f" % (c, ap50, coco, pr[2]))
        sums = [sums[0] + ap50, sums[1] + coco, sums[2] + pr[2]]
        n += 1
    if n:
        print("map %.9f %.9f %.9f" % tuple(s / n for s in sums))
    else:
        print("map none")


if __name__ == "__main__":
    main(sys.argv[1])
