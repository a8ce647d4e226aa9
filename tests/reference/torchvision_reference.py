#!/usr/bin/env python3
"""Reference for tests/test_torchvision_convert.c: randomly initialised torchvision ResNet-18
and ResNet-34 (no download), their state dicts, Darknet weights written by
tools/torchvision_to_darknet.py, one input batch and PyTorch's eval-mode logits.

Usage: python3 tests/reference/torchvision_reference.py <out_dir>
Writes, for arch in resnet18 resnet34: <arch>.pth, <arch>.weights, <arch>.cfg (the repository's
cfg at 64x64, batch 2, without [softmax] so that Darknet's output is the logits; the student
keeps its [tat_distill] section), input.bin (2x3x64x64 float32, RGB in [0,1]) and
<arch>.logits.bin: PyTorch's logits on that input normalised by the ImageNet mean and std, as
the cfgs' input_mean / input_std normalise it in Darknet.

BatchNorm statistics are made realistic, not left at PyTorch's init (mean 0, var 1, gamma 1,
beta 0, which would leave the running statistics untested): each model first runs in training
mode on random batches with cumulative averaging, then gamma and beta are drawn at random.
"""
import os
import subprocess
import sys

import torch
import torchvision

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CFGS = {"resnet18": "cfg/imagenet-resnet18-tat.cfg", "resnet34": "cfg/imagenet-resnet34-teacher.cfg"}
SIZE, BATCH = 64, 2
MEAN = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)


def small_cfg(src, dst):
    """the cfg at SIZE x SIZE, batch BATCH, and no [softmax]"""
    out, skip = [], False
    for line in open(src):
        s = line.split("#", 1)[0].strip()
        if s.startswith("["):
            skip = s == "[softmax]"
        if skip:
            continue
        key = s.split("=", 1)[0].strip()
        if key in ("width", "height"):
            line = f"{key}={SIZE}\n"
        elif key == "batch":
            line = f"batch={BATCH}\n"
        elif key in ("min_crop", "max_crop"):
            line = f"{key}={SIZE}\n"
        out.append(line)
    open(dst, "w").writelines(out)


def realistic(model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.rand(8, 3, SIZE, SIZE, generator=g))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
    model.eval()


def main(out_dir):
    torch.manual_seed(0)
    x = torch.rand(BATCH, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    x.numpy().astype("<f4").tofile(os.path.join(out_dir, "input.bin"))
    for i, (arch, cfg) in enumerate(CFGS.items()):
        model = getattr(torchvision.models, arch)()
        realistic(model, 10 + i)
        pth = os.path.join(out_dir, arch + ".pth")
        torch.save(model.state_dict(), pth)
        with torch.no_grad():  # the cfgs normalise their input as torchvision's transforms do
            model((x - MEAN) / STD).numpy().astype("<f4").tofile(os.path.join(out_dir, arch + ".logits.bin"))
        small_cfg(os.path.join(TOP, cfg), os.path.join(out_dir, arch + ".cfg"))
        subprocess.run([sys.executable, os.path.join(TOP, "tools/torchvision_to_darknet.py"), pth,
                        os.path.join(out_dir, arch + ".cfg"), os.path.join(out_dir, arch + ".weights")],
                       check=True)


if __name__ == "__main__":
    main(sys.argv[1])
