#!/usr/bin/env python3
"""Reference for tests/test_adam.c: torch.optim.Adam / AdamW.

Usage: python3 tests/reference/adam_reference.py <dir>
For every <dir>/<case>.txt ("n steps lr decay beta1 beta2 eps decoupled"), reads
<case>.init.bin (n float32 parameters) and <case>.grads.bin (steps x n float32 gradients of the
mean loss), runs the optimiser one step per gradient and writes <case>.torch.bin.
For every <dir>/<case>.net ("steps batch lr decay beta1 beta2 eps decoupled"), trains the
small network of test_adam.c (3x3 conv 3->4 with bias, ReLU, global average pool, linear
4->3, softmax cross-entropy averaged over the batch) from <case>.init.bin (conv weights,
conv biases, linear weights, linear biases) on <case>.x.bin / <case>.y.bin (steps batches of
batch x 3 x 5 x 6 images, class indices as float32) and writes <case>.torch.bin.
"""
import glob
import os
import sys

import numpy as np
import torch


def main(d):
    for spec in sorted(glob.glob(os.path.join(d, "*.txt"))):
        case = spec[:-4]
        n, steps, lr, decay, b1, b2, eps, decoupled = open(spec).read().split()
        n, steps, decoupled = int(n), int(steps), int(decoupled)
        p = torch.nn.Parameter(torch.from_numpy(np.fromfile(case + ".init.bin", dtype="<f4").copy()))
        grads = np.fromfile(case + ".grads.bin", dtype="<f4").reshape(steps, n)
        opt = (torch.optim.AdamW if decoupled else torch.optim.Adam)(
            [p], lr=float(lr), betas=(float(b1), float(b2)), eps=float(eps), weight_decay=float(decay))
        for g in grads:
            p.grad = torch.from_numpy(g.copy())
            opt.step()
        p.detach().numpy().astype("<f4").tofile(case + ".torch.bin")
    for spec in sorted(glob.glob(os.path.join(d, "*.net"))):
        case = spec[:-4]
        steps, batch, lr, decay, b1, b2, eps, decoupled = open(spec).read().split()
        steps, batch, decoupled = int(steps), int(batch), int(decoupled)
        conv, fc = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Linear(4, 3)
        params = [conv.weight, conv.bias, fc.weight, fc.bias]
        flat = torch.from_numpy(np.fromfile(case + ".init.bin", dtype="<f4").copy())
        k = 0
        with torch.no_grad():
            for q in params:
                q.copy_(flat[k:k + q.numel()].reshape(q.shape))
                k += q.numel()
        x = torch.from_numpy(np.fromfile(case + ".x.bin", dtype="<f4").copy()).reshape(steps, batch, 3, 5, 6)
        y = torch.from_numpy(np.fromfile(case + ".y.bin", dtype="<f4").copy()).reshape(steps, batch).long()
        opt = (torch.optim.AdamW if decoupled else torch.optim.Adam)(
            params, lr=float(lr), betas=(float(b1), float(b2)), eps=float(eps), weight_decay=float(decay))
        for t in range(steps):
            opt.zero_grad()
            logits = fc(torch.relu(conv(x[t])).mean(dim=(2, 3)))
            torch.nn.functional.cross_entropy(logits, y[t]).backward()
            opt.step()
        torch.cat([q.detach().reshape(-1) for q in params]).numpy().astype("<f4").tofile(case + ".torch.bin")


if __name__ == "__main__":
    main(sys.argv[1])
