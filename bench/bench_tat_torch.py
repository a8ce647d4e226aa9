#!/usr/bin/env python3
"""The TaT losses as the official PyTorch code computes them, timed at the settings of
bench/bench_tat.c (same shapes, same thread count): conv+BN embeddings, patch regrouping by
reshape, avg_pool2d anchors, bmm attention, softmax, MSE, backward by autograd.

Prints one line per setting, read by bench/report.sh:  torch <setting> <ms/image>
usage: bench_tat_torch.py [threads] [reps] [setting ...]
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# name: batch, channels, h, w, ksize, key learned, per-image BN, grid, groups, anchors, beta, gamma
SETTINGS = {
    "voc-r18": (2, 256, 129, 129, 1, True, True, 16, 64, 32, 1.0, 0.4),
    "voc-mnv2": (2, 256, 129, 129, 1, True, True, 32, 1024, 64, 1.0, 0.5),
    "coco-r18": (2, 256, 129, 129, 1, True, True, 32, 512, 32, 1.0, 1.0),
    "coco-mnv2": (2, 256, 129, 129, 1, True, True, 16, 64, 32, 1.0, 1.0),
    "imagenet": (32, 512, 7, 7, 3, False, False, 1, 1, 0, 1.0, 0.0),
}


def embedding(cin, cout, k):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout))


def patch_groups(x, n, m, g):
    """(B, C, H, W) -> (B*g, ph*pw, (n*m/g)*C): row = intra-patch offset, column = (patch, channel)."""
    b, c, h, w = x.shape
    ph, pw = h // n, w // m
    x = x[:, :, : n * ph, : m * pw].reshape(b, c, n, ph, m, pw)
    x = x.permute(0, 2, 4, 3, 5, 1).reshape(b, n * m, ph * pw, c)  # patch p = pi*m + pj
    x = x.reshape(b, g, n * m // g, ph * pw, c).permute(0, 1, 3, 2, 4)
    return x.reshape(b * g, ph * pw, n * m // g * c)


def positions(x):
    """(B, C, H, W) -> (B, H*W, C)"""
    return x.flatten(2).transpose(1, 2)


def tat_loss(q, k, v, t):
    a = torch.softmax(torch.bmm(q, k.transpose(1, 2)), dim=-1)
    return F.mse_loss(torch.bmm(a, v), t)


def run(name, threads, reps):
    batch, c, h, w, ks, key_learned, per_image, grid, groups, anchors, beta, gamma = SETTINGS[name]
    torch.manual_seed(0)
    eq, ev = embedding(c, c, ks), embedding(c, c, ks)
    ek = embedding(c, c, 1) if key_learned else None
    student = torch.randn(batch, c, h, w, requires_grad=True)
    teacher = torch.randn(batch, c, h, w)

    def step():
        loss = 0
        # the segmentation code embeds and distills one image at a time (per-image BN)
        chunks = [(student[i : i + 1], teacher[i : i + 1]) for i in range(batch)] if per_image else [(student, teacher)]
        for s, t in chunks:
            q, v = eq(s), ev(s)
            k = ek(t) if ek is not None else t
            if grid == 1 and groups == 1:
                loss = loss + beta * tat_loss(positions(q), positions(k), positions(v), positions(t))
            else:
                pg = lambda x: patch_groups(x, grid, grid, groups)
                loss = loss + beta * tat_loss(pg(q), pg(k), pg(v), pg(t))
            if anchors:
                kern = (h // anchors, w // anchors)
                pa = lambda x: positions(F.avg_pool2d(x, kern, kern))
                loss = loss + gamma * tat_loss(pa(q), pa(k), pa(v), pa(t))
        loss.backward()

    best = float("inf")
    for r in range(reps + 1):  # the first run warms up
        t0 = time.perf_counter()
        step()
        dt = time.perf_counter() - t0
        if r:
            best = min(best, dt)
    print("torch %s %.2f" % (name, 1e3 * best / batch), flush=True)


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    names = sys.argv[3:] or list(SETTINGS)
    torch.set_num_threads(threads)
    for name in names:
        run(name, threads, reps)


if __name__ == "__main__":
    main()
