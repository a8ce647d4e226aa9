#!/usr/bin/env python3
"""The distillation steps of bench/bench_distill.c in PyTorch (eager, autograd), one
measurement per process, read by bench/run.sh:

  bench_distill_torch.py prepare <dir>     seeded random torchvision ResNet-34 / ResNet-18 state
      dicts (<dir>/resnet34.pth, resnet18.pth) and, through tools/torchvision_to_darknet.py, the
      same weights for Darknet; the bench cfgs: <dir>/imagenet-student.cfg (the shipped
      cfg/imagenet-resnet18-tat.cfg with a logit-KD section added before its softmax) and
      <dir>/imagenet-student-alone.cfg (without its distillation sections)
  bench_distill_torch.py <mode> <setting> <batch> <steps> <threads> [<dir>]
      mode: step (the whole distillation step), student (the student's step alone), teacher
      (the frozen teacher's forward alone); setting: imagenet (ResNet-34 teacher, ResNet-18
      student, 224x224, TaT one-to-all on layer4 7x7x512 with 3x3 query/value embeddings and
      batch BatchNorm, identity key, weight 2, logit KD at T=4, cross-entropy, AdamW) or fashion
      (the networks of cfg/fashion-teacher.cfg and cfg/fashion-student-tat.cfg, 28x28x3, TaT
      one-to-all with 1x1 embeddings, SGD with momentum as the cfg trains)
  Prints: torch <mode> <batch> <median ms per step> <peak RSS MiB>
"""
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KD_T = 4.0


def embedding(cin, cout, k):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout))


def positions(x):
    """(B, C, H, W) -> (B, H*W, C)"""
    return x.flatten(2).transpose(1, 2)


def tat_one_to_all(q, v, t):
    """one-to-all TaT with the identity key: every student position attends to every teacher
    position; the loss is the MSE of the attended values against the teacher map"""
    q, v, t = positions(q), positions(v), positions(t)
    a = torch.softmax(torch.bmm(q, t.transpose(1, 2)), dim=-1)
    return F.mse_loss(torch.bmm(a, v), t)


def kd(student_logits, teacher_logits):
    return F.kl_div(F.log_softmax(student_logits / KD_T, 1), F.softmax(teacher_logits / KD_T, 1),
                    reduction="batchmean") * KD_T * KD_T


# ---- the networks ----------------------------------------------------------------------------
def resnet_layer4_and_logits(m, x):
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    f = m.layer4(m.layer3(m.layer2(m.layer1(x))))
    return f, m.fc(torch.flatten(m.avgpool(f), 1))


def conv_bn_leaky(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1)]


class FashionTeacher(nn.Module):
    """cfg/fashion-teacher.cfg"""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*conv_bn_leaky(3, 32), nn.MaxPool2d(2), *conv_bn_leaky(32, 64),
                                      nn.MaxPool2d(2), *conv_bn_leaky(64, 128))
        self.fc = nn.Linear(7 * 7 * 128, 10)

    def forward(self, x):
        f = self.features(x)
        return f, self.fc(f.flatten(1))


class FashionStudent(nn.Module):
    """cfg/fashion-student.cfg (and -tat.cfg without its [tat_distill])"""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*conv_bn_leaky(3, 8), nn.MaxPool2d(2), *conv_bn_leaky(8, 16),
                                      nn.MaxPool2d(2), *conv_bn_leaky(16, 32))
        self.logits = nn.Conv2d(32, 10, 1)

    def forward(self, x):
        f = self.features(x)
        return f, self.logits(f).mean((2, 3))


def setting(name, dirname):
    """teacher, student, embeddings (q, v), TaT weight, KD on?, optimiser, input size"""
    if name == "imagenet":
        import torchvision
        teacher, student = torchvision.models.resnet34(), torchvision.models.resnet18()
        if dirname:
            teacher.load_state_dict(torch.load(os.path.join(dirname, "resnet34.pth")))
            student.load_state_dict(torch.load(os.path.join(dirname, "resnet18.pth")))
        forward = resnet_layer4_and_logits
        eq, ev = embedding(512, 512, 3), embedding(512, 512, 3)
        params = list(student.parameters()) + list(eq.parameters()) + list(ev.parameters())
        return (teacher, student, forward, eq, ev, 2.0, True, lambda p: torch.optim.AdamW(p, lr=2e-4, weight_decay=5e-4),
                params, 224)
    teacher, student = FashionTeacher(), FashionStudent()
    eq, ev = embedding(32, 128, 1), embedding(32, 128, 1)
    params = list(student.parameters()) + list(eq.parameters()) + list(ev.parameters())
    return (teacher, student, lambda m, x: m(x), eq, ev, 2.0, False,
            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4), params, 28)


def run(mode, name, batch, steps, threads, dirname):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    teacher, student, forward, eq, ev, beta, use_kd, make_opt, params, size = setting(name, dirname)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    if mode == "student":
        params = list(student.parameters())
    opt = make_opt(params)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def step():
        x = torch.rand(batch, 3, size, size)
        y = torch.randint(0, 1000 if name == "imagenet" else 10, (batch,))
        if name == "imagenet":
            x = (x - mean) / std
        if mode == "teacher":
            with torch.no_grad():
                forward(teacher, x)
            return
        if mode == "step":
            with torch.no_grad():
                t_feat, t_logits = forward(teacher, x)
        s_feat, s_logits = forward(student, x)
        loss = F.cross_entropy(s_logits, y)
        if mode == "step":
            loss = loss + beta * tat_one_to_all(eq(s_feat), ev(s_feat), t_feat)
            if use_kd:
                loss = loss + kd(s_logits, t_logits)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times = []
    for s in range(steps + 1):  # the first step warms up
        t0 = time.perf_counter()
        step()
        if s:
            times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2] if len(times) % 2 else (times[len(times) // 2 - 1] + times[len(times) // 2]) / 2
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("torch %s %d %.2f %.1f" % (mode, batch, 1e3 * median, peak), flush=True)


def prepare(dirname):
    import torchvision
    torch.manual_seed(0)
    for arch in ("resnet34", "resnet18"):
        torch.save(getattr(torchvision.models, arch)().state_dict(), os.path.join(dirname, arch + ".pth"))
    student = open(os.path.join(TOP, "cfg", "imagenet-resnet18-tat.cfg")).read()
    teacher_cfg = os.path.join(TOP, "cfg", "imagenet-resnet34-teacher.cfg")
    # the teacher's logits: its last [convolutional] (layers count from 0 after [net])
    sections = [l.strip() for l in open(teacher_cfg) if l.strip().startswith("[")]
    teacher_fc = max(i for i, s in enumerate(sections) if s == "[convolutional]") - 1
    head, sep, tail = student.rpartition("[softmax]")
    with open(os.path.join(dirname, "imagenet-student.cfg"), "w") as f:
        f.write(head + "[kd_distill]\nfrom=-1\nteacher_layer=%d\ntemperature=%g\nloss_weight=1\n\n" % (teacher_fc, KD_T)
                + sep + tail)
    # without the distillation sections (none of the sections after them refers back across them)
    out, skip = [], False
    for line in student.splitlines(True):
        if line.strip().startswith("["):
            skip = line.strip() in ("[tat_distill]", "[kd_distill]")
        if not skip:
            out.append(line)
    with open(os.path.join(dirname, "imagenet-student-alone.cfg"), "w") as f:
        f.write("".join(out))
    convert = os.path.join(TOP, "tools", "torchvision_to_darknet.py")
    for pth, cfg, out in (("resnet34.pth", teacher_cfg, "teacher.weights"),
                          ("resnet18.pth", os.path.join(dirname, "imagenet-student-alone.cfg"), "student.weights")):
        subprocess.run([sys.executable, convert, os.path.join(dirname, pth), cfg, os.path.join(dirname, out)],
                       check=True, stdout=subprocess.DEVNULL)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "prepare":
        prepare(sys.argv[2])
    elif len(sys.argv) in (6, 7) and sys.argv[1] in ("step", "student", "teacher"):
        run(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
            sys.argv[6] if len(sys.argv) == 7 else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
