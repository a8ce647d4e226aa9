#!/usr/bin/env python3
"""Reference for tests/test_adam.c: torch.optim.Adam / AdamW on given gradients.

Usage: python3 tests/reference/adam_reference.py <dir>
For every <dir>/<case>.txt ("n steps lr decay beta1 beta2 eps decoupled"), reads
<case>.init.bin (n float32 parameters) and <case>.grads.bin (steps x n float32 gradients of the
mean loss), runs the optimiser one step per gradient and writes <case>.torch.bin.
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


if __name__ == "__main__":
    main(sys.argv[1])
