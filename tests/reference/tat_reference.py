#!/usr/bin/env python3
"""Independent PyTorch oracle for the TaT distillation math (tests/test_tat_math.c reads its output).

It follows the official TaT / TaT-seg code as a PyTorch program would write it, not the C code:
  * embeddings: nn.Conv2d (no bias, 1x1 or 3x3 with padding 1) followed by nn.BatchNorm2d in
    training mode (eps 1e-5, biased variance). "per-image" mode runs the embedding one image at a
    time, as the segmentation code does, so the BN statistics are per image.
  * key: identity (the raw teacher feature) or a learned 1x1 conv + BN on the teacher feature.
  * patch groups: crop to the covered n*ph x m*pw area, F.unfold with kernel = stride =
    (ph, pw) = (H//n, W//m), then reshape/permute so that a group's position vector is the concatenation of the
    channels of its P/g consecutive (row-major) patches.
  * anchors: F.avg_pool2d with kernel = stride = (H//ah, W//aw).
  * attention: S = Q K^T (no scaling), softmax over key positions, O = A V;
    per-image loss F.mse_loss(O, T) with T the RAW teacher feature regrouped/pooled the same way.
  * total L = sum over images of (patch_weight * MSE_patch(image) + anchor_weight * MSE_anchor(image)).
Gradients come from autograd. All math is float64; inputs and parameters are drawn as float32
values so that the C code (float32) sees exactly the same numbers.

Baselines (same fixture format, files kd_*.txt and fitnet_*.txt):
  * [kd_distill]: loss_weight * T^2 * F.kl_div(F.log_softmax(s/T, 1), F.softmax(t/T, 1),
    reduction='batchmean'), gradient w.r.t. the student logits s. The teacher logits include
    entries so negative that their softmax is exactly 0 (kl_div's 0 * log 0 = 0) and the student
    logits a large one (stability).
  * [fitnet_distill]: loss_weight * F.mse_loss(BN(conv1x1(fs)), ft) (mean over all elements of the
    batch), BN in training mode over the batch or per image; gradients w.r.t. fs and the
    projection's conv weights, BN gamma and beta.

Usage: python3 tests/reference/tat_reference.py tests/fixtures
(a python3 with PyTorch, e.g. Debian's python3-torch, and numpy). Deterministic (fixed seeds).
Tolerances used by the C test: the library runs in float32 on exactly these float32 inputs, so
its error is float32 rounding only (observed <= ~1e-5 of each tensor's max |value|); the test
allows 1e-4 of the max |reference| per gradient tensor and 1e-5 for the loss and embedding outputs.
Case d is built so that a wrong BN epsilon (outside the sqrt, or 0) moves results by ~2.5e-2. Fixture format (text, read by tests/test_tat_math.c):
  line 1: "tat-fixture 1"
  then records: a line "<name> <count>" followed by <count> numbers (%.9g, 6 per line).
  Config ints are records of count 1. Conv weights are [out_c][in_c][k][k], NCHW maps.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


class Embedding(nn.Module):
    """conv (no bias) + training-mode BatchNorm, no activation."""

    def __init__(self, in_c, out_c, ksize):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, ksize, stride=1, padding=ksize // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_c, eps=1e-5)

    def forward(self, x, per_image):
        if per_image:
            # the segmentation code embeds one image at a time -> BN statistics per image
            return torch.cat([self.bn(self.conv(x[i:i + 1])) for i in range(x.shape[0])], 0)
        return self.bn(self.conv(x))


def patch_groups(x, grid_h, grid_w, groups):
    """NCHW map -> (B, groups, N, d) blocks with positions as rows."""
    b, c, h, w = x.shape
    ph, pw = h // grid_h, w // grid_w
    n_patch = grid_h * grid_w
    x = x[:, :, :grid_h * ph, :grid_w * pw]   # rows/columns past the grid are left out
    cols = F.unfold(x, kernel_size=(ph, pw), stride=(ph, pw))      # (B, C*ph*pw, P), row-major patches
    cols = cols.reshape(b, c, ph * pw, n_patch).permute(0, 3, 1, 2)  # (B, P, C, N)
    blocks = cols.reshape(b, groups, (n_patch // groups) * c, ph * pw)  # (B, g, d, N), e = pl*C + c
    return blocks.transpose(2, 3)                                   # (B, g, N, d)


def anchor_pool(x, anchor_h, anchor_w):
    """NCHW map -> (B, 1, Na, C) block of pooled anchors."""
    b, c, h, w = x.shape
    kh, kw = h // anchor_h, w // anchor_w
    p = F.avg_pool2d(x, kernel_size=(kh, kw), stride=(kh, kw))
    return p.reshape(b, 1, c, -1).transpose(2, 3)


def tat_attention(q, k, v):
    """q, k, v: (..., N, d). S = Q K^T, row softmax over key positions, O = A V."""
    attn = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
    return attn @ v


def per_image_mse(o, t):
    return torch.stack([F.mse_loss(o[i], t[i]) for i in range(o.shape[0])])


class TaTDistiller(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.query = Embedding(cfg["Cs"], cfg["Ct"], cfg["ksize"])
        self.value = Embedding(cfg["Cs"], cfg["Ct"], cfg["ksize"])
        self.key = Embedding(cfg["Ct"], cfg["Ct"], cfg["key_ksize"]) if cfg["key_learned"] else None

    def forward(self, fs, ft):
        cfg = self.cfg
        per_image = cfg["per_image"]
        q = self.query(fs, per_image)
        v = self.value(fs, per_image)
        k = self.key(ft, per_image) if self.key is not None else ft
        self.maps = (q, k, v)
        loss_patch = torch.zeros(fs.shape[0])
        loss_anchor = torch.zeros(fs.shape[0])
        if cfg["patch_enabled"]:
            g = (cfg["grid_h"], cfg["grid_w"], cfg["groups"])
            o = tat_attention(patch_groups(q, *g), patch_groups(k, *g), patch_groups(v, *g))
            loss_patch = per_image_mse(o, patch_groups(ft, *g))
        if cfg["anchor_enabled"]:
            a = (cfg["anchor_h"], cfg["anchor_w"])
            o = tat_attention(anchor_pool(q, *a), anchor_pool(k, *a), anchor_pool(v, *a))
            loss_anchor = per_image_mse(o, anchor_pool(ft, *a))
        total = (cfg["patch_weight"] * loss_patch + cfg["anchor_weight"] * loss_anchor).sum()
        return total, loss_patch.sum(), loss_anchor.sum()


def self_check_patch_groups():
    """The unfold-based regrouping must match the index map of the method note."""
    rng = np.random.default_rng(7)
    for (b, c, h, w, n, m, g) in ((2, 3, 7, 9, 2, 3, 3), (1, 2, 8, 5, 3, 2, 2), (1, 2, 6, 8, 2, 2, 1)):
        _check_one(rng, b, c, h, w, n, m, g)


def _check_one(rng, b, c, h, w, n, m, g):
    x = rng.standard_normal((b, c, h, w))
    blocks = patch_groups(torch.from_numpy(x), n, m, g).numpy()  # (B, g, N, d)
    ph, pw, per = h // n, w // m, (n * m) // g
    for bi in range(b):
        for a in range(g):
            for r in range(ph * pw):
                for e in range(per * c):
                    y, xx, pl, cc = r // pw, r % pw, e // c, e % c
                    pp = a * per + pl
                    pi, pj = pp // m, pp % m
                    assert blocks[bi, a, r, e] == x[bi, cc, pi * ph + y, pj * pw + xx]


def f32(a):
    return np.asarray(a, dtype=np.float32)


def make_case(name, seed, B, Cs, Ct, H, W, ksize, key_learned, per_image, patch=None, anchor=None,
              conv_scale=1.0, in_scale=1.0):
    cfg = dict(B=B, Cs=Cs, Ct=Ct, H=H, W=W, ksize=ksize, key_learned=int(key_learned), key_ksize=1,
               per_image=int(per_image), patch_enabled=0, grid_h=1, grid_w=1, groups=1,
               patch_weight=0.0, anchor_enabled=0, anchor_h=1, anchor_w=1, anchor_weight=0.0)
    if patch is not None:
        cfg.update(patch_enabled=1, grid_h=patch[0], grid_w=patch[1], groups=patch[2],
                   patch_weight=patch[3])
    if anchor is not None:
        cfg.update(anchor_enabled=1, anchor_h=anchor[0], anchor_w=anchor[1], anchor_weight=anchor[2])
    rng = np.random.default_rng(seed)
    arrays = {}
    arrays["xs"] = f32(in_scale * rng.standard_normal((B, Cs, H, W)))
    # teacher feature: post-ReLU-like in the ImageNet setting would be >= 0; keep it signed here,
    # with an offset per channel so that the raw target is not zero-mean.
    arrays["xt"] = f32(rng.standard_normal((B, Ct, H, W)) + rng.standard_normal((1, Ct, 1, 1)))
    embs = [("q", Cs, ksize), ("v", Cs, ksize)] + ([("k", Ct, 1)] if key_learned else [])
    for p, cin, k in embs:
        fan_in = cin * k * k
        arrays[p + "_w"] = f32(conv_scale * rng.uniform(-1, 1, (Ct, cin, k, k)) * np.sqrt(3.0 / fan_in))
        arrays[p + "_gamma"] = f32(rng.uniform(0.5, 1.5, Ct))
        arrays[p + "_beta"] = f32(0.3 * rng.standard_normal(Ct))

    model = TaTDistiller(cfg)
    with torch.no_grad():
        for p, mod in (("q", model.query), ("v", model.value), ("k", model.key)):
            if mod is None:
                continue
            mod.conv.weight.copy_(torch.from_numpy(arrays[p + "_w"].astype(np.float64)))
            mod.bn.weight.copy_(torch.from_numpy(arrays[p + "_gamma"].astype(np.float64)))
            mod.bn.bias.copy_(torch.from_numpy(arrays[p + "_beta"].astype(np.float64)))
    model.train()
    fs = torch.from_numpy(arrays["xs"].astype(np.float64)).requires_grad_(True)
    ft = torch.from_numpy(arrays["xt"].astype(np.float64))
    total, lp, la = model(fs, ft)
    total.backward()

    out = {}
    out["loss"] = np.array([total.item()])
    out["loss_patch"] = np.array([lp.item()])      # sum over images of the per-image patch MSE
    out["loss_anchor"] = np.array([la.item()])     # sum over images of the per-image anchor MSE
    out["grad_xs"] = fs.grad.numpy()
    for p, mod in (("q", model.query), ("v", model.value), ("k", model.key)):
        if mod is None:
            continue
        out["grad_" + p + "_w"] = mod.conv.weight.grad.numpy()
        out["grad_" + p + "_gamma"] = mod.bn.weight.grad.numpy()
        out["grad_" + p + "_beta"] = mod.bn.bias.grad.numpy()
    q, k, v = model.maps
    out["q_out"] = q.detach().numpy()
    out["v_out"] = v.detach().numpy()
    if key_learned:
        out["k_out"] = k.detach().numpy()
    return name, cfg, arrays, out


CASES = [
    # (a) full one-to-all (grid 1x1, one group), identity key, 3x3 embeddings, batch BN
    dict(name="a_full_identity_k3_batchbn", seed=101, B=2, Cs=5, Ct=6, H=4, W=4, ksize=3,
         key_learned=False, per_image=False, patch=(1, 1, 1, 0.7)),
    # (b) patch groups on a map not divisible by the grid + anchors on the same q, k, v;
    #     learned key, 1x1 embeddings, per-image BN
    dict(name="b_groups_anchors_learnedkey_k1_perimage", seed=202, B=2, Cs=4, Ct=3, H=7, W=9,
         ksize=1, key_learned=True, per_image=True, patch=(2, 3, 3, 1.0), anchor=(3, 2, 0.4)),
    # (c) anchors only, uneven pooling: kernel (11//4, 6//2) = (2, 3) -> 5 x 2 anchors (5 > 4 asked)
    dict(name="c_anchors_only_identity_k3_batchbn", seed=303, B=3, Cs=4, Ct=5, H=11, W=6, ksize=3,
         key_learned=False, per_image=False, anchor=(4, 2, 0.5)),
    # (d) one group over a 2x2 grid (d = 4*C), learned key, 3x3 embeddings, batch BN; the conv
    #     weights are scaled down so that the pre-BN variance is ~1e-3 and the placement / value
    #     of eps inside the sqrt changes the result at the ~1e-3 level (visible above tolerance)
    dict(name="d_onegroup_grid_learnedkey_k3_smallvar", seed=404, B=2, Cs=3, Ct=4, H=6, W=8,
         ksize=3, key_learned=True, per_image=False, patch=(2, 2, 1, 1.3), conv_scale=0.03),
    # (e) per-image BN with 3x3 embeddings and a learned key; 2 groups of 3 patches on a 3x2 grid
    #     with remainders (8x5 -> 6x4 covered), plus anchors whose pooling kernel is (4, 1)
    dict(name="e_groups_anchors_learnedkey_k3_perimage", seed=505, B=3, Cs=2, Ct=3, H=8, W=5,
         ksize=3, key_learned=True, per_image=True, patch=(3, 2, 2, 0.8), anchor=(2, 5, 0.6)),
]


def make_kd_case(name, seed, B, n, temperature, loss_weight):
    rng = np.random.default_rng(seed)
    arrays = {}
    s = 3.0 * rng.standard_normal((B, n))
    t = 3.0 * rng.standard_normal((B, n))
    s[0, 1] = 80.0          # a large student logit: softmax must subtract the max
    t[1, 2] = -1.0e4        # teacher classes with probability exactly 0 in float64
    t[B - 1, n - 1] = -3.0e4
    arrays["s"] = f32(s)
    arrays["t"] = f32(t)
    sv = torch.from_numpy(arrays["s"].astype(np.float64)).requires_grad_(True)
    tv = torch.from_numpy(arrays["t"].astype(np.float64))
    T = temperature
    p_t = F.softmax(tv / T, 1)
    assert (p_t == 0).any(), "the fixture must contain teacher probabilities of exactly 0"
    loss = F.kl_div(F.log_softmax(sv / T, 1), p_t, reduction="batchmean") * T * T * loss_weight
    loss.backward()
    cfg = dict(B=B, n=n, temperature=T, loss_weight=loss_weight)
    out = {"loss": np.array([loss.item()]), "grad_s": sv.grad.numpy()}
    return name, cfg, arrays, out


def make_fitnet_case(name, seed, B, Cs, Ct, H, W, per_image, loss_weight):
    rng = np.random.default_rng(seed)
    arrays = {}
    arrays["xs"] = f32(rng.standard_normal((B, Cs, H, W)))
    arrays["xt"] = f32(rng.standard_normal((B, Ct, H, W)) + rng.standard_normal((1, Ct, 1, 1)))
    arrays["w"] = f32(rng.uniform(-1, 1, (Ct, Cs, 1, 1)) * np.sqrt(3.0 / Cs))
    arrays["gamma"] = f32(rng.uniform(0.5, 1.5, Ct))
    arrays["beta"] = f32(0.3 * rng.standard_normal(Ct))
    proj = Embedding(Cs, Ct, 1)
    with torch.no_grad():
        proj.conv.weight.copy_(torch.from_numpy(arrays["w"].astype(np.float64)))
        proj.bn.weight.copy_(torch.from_numpy(arrays["gamma"].astype(np.float64)))
        proj.bn.bias.copy_(torch.from_numpy(arrays["beta"].astype(np.float64)))
    proj.train()
    fs = torch.from_numpy(arrays["xs"].astype(np.float64)).requires_grad_(True)
    ft = torch.from_numpy(arrays["xt"].astype(np.float64))
    y = proj(fs, per_image)
    loss = loss_weight * F.mse_loss(y, ft)
    loss.backward()
    cfg = dict(B=B, Cs=Cs, Ct=Ct, H=H, W=W, per_image=int(per_image), loss_weight=loss_weight)
    out = {"loss": np.array([loss.item()]), "proj_out": y.detach().numpy(),
           "grad_xs": fs.grad.numpy(), "grad_w": proj.conv.weight.grad.numpy(),
           "grad_gamma": proj.bn.weight.grad.numpy(), "grad_beta": proj.bn.bias.grad.numpy()}
    return name, cfg, arrays, out


BASELINE_CASES = [
    (make_kd_case, dict(name="kd_T1", seed=606, B=3, n=7, temperature=1.0, loss_weight=0.9)),
    (make_kd_case, dict(name="kd_T4", seed=707, B=3, n=7, temperature=4.0, loss_weight=1.0)),
    (make_fitnet_case, dict(name="fitnet_batchbn", seed=808, B=3, Cs=4, Ct=6, H=5, W=7,
                            per_image=False, loss_weight=2.0)),
    (make_fitnet_case, dict(name="fitnet_perimage", seed=909, B=2, Cs=5, Ct=3, H=7, W=4,
                            per_image=True, loss_weight=0.7)),
]


def write_fixture(path, cfg, arrays, out):
    lines = ["tat-fixture 1"]

    def rec(name, values):
        flat = np.asarray(values, dtype=np.float64).reshape(-1)
        lines.append("%s %d" % (name, flat.size))
        for i in range(0, flat.size, 6):
            lines.append(" ".join("%.9g" % val for val in flat[i:i + 6]))

    for key, val in cfg.items():
        rec(key, [val])
    for key, val in arrays.items():
        rec(key, val)
    for key, val in out.items():
        rec(key, val)
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: %s OUTPUT_DIR\n" % sys.argv[0])
        return 2
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(0)
    self_check_patch_groups()
    for case in CASES:
        name, cfg, arrays, out = make_case(**case)
        path = os.path.join(outdir, name + ".txt")
        write_fixture(path, cfg, arrays, out)
        print("%s: loss %.9g (patch %.6g, anchor %.6g), |grad_xs|max %.3g" % (
            path, out["loss"][0], out["loss_patch"][0], out["loss_anchor"][0],
            np.abs(out["grad_xs"]).max()))
    for make, case in BASELINE_CASES:
        name, cfg, arrays, out = make(**case)
        path = os.path.join(outdir, name + ".txt")
        write_fixture(path, cfg, arrays, out)
        print("%s: loss %.9g" % (path, out["loss"][0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
