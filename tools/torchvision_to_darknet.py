#!/usr/bin/env python3
"""torchvision ResNet state dict (.pth) -> Darknet .weights for a cfg with the same layout.

Usage: python3 tools/torchvision_to_darknet.py <model.pth> <network.cfg> <out.weights>

The cfg is one that follows torchvision's ResNet layout (cfg/imagenet-resnet34-teacher.cfg,
cfg/imagenet-resnet18-tat.cfg): every [convolutional] in cfg order takes the next convolution
of the state dict in its own order (conv1, layerN.M.conv1, .conv2, .downsample.0, ...), with
the BatchNorm that follows it; the last 1x1 [convolutional] without BatchNorm takes `fc`.
Distillation sections are skipped: the file holds the network without them, which
`darknet distill classifier train` recognises and completes with fresh distillation layers.

Darknet's convolutional layer stores, in this order: biases (BN beta), scales (BN gamma),
rolling mean, rolling variance (those three only with batch_normalize=1), then the weights as
[filters][channels][size][size], PyTorch's own order. Darknet's BatchNorm divides by
sqrt(var + 1e-5) (patch 0050) like torchvision's eps 1e-5, so the numbers are copied as they are.

The network computes what torchvision computes. torchvision's pretrained models expect RGB in
[0,1] normalised by the ImageNet mean and std: the cfgs do that in Darknet with
input_mean=0.485,0.456,0.406 and input_std=0.229,0.224,0.225 in [net] (patch 0054).

A state dict that does not fit the cfg (other depth, other widths, other class count) is
refused with one line naming the cfg, the layer and the tensor, as is a tensor holding NaN or
Inf, and an output that is the state dict or the cfg; nothing is written then.
"""
import struct
import sys

from output_paths import Refused, one_line_failures, refuse_outputs, write_all

DISTILL_SECTIONS = {"tat_distill", "anchor_distill", "kd_distill", "fitnet_distill"}
LEARNED_SECTIONS = {"convolutional", "conv", "connected", "conn", "deconvolutional", "deconv",
                    "batchnorm", "local", "rnn", "gru", "lstm", "crnn"}


def read_cfg(path):
    """[(section, {key: value}, line)] in file order, [net] included."""
    sections = []
    with open(path) as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("["):
                sections.append((line.strip("[]").strip(), {}, lineno))
            elif "=" in line and sections:
                k, v = line.split("=", 1)
                sections[-1][1][k.strip()] = v.strip()
    if not sections or sections[0][0] not in ("net", "network"):
        raise Refused(f"{path}: not a Darknet cfg (no [net] section first)")
    return sections


def conv_layers(cfg_path, sections):
    """(layer index, filters, size, batch_normalize) for every [convolutional], in order;
    input channels are tracked through the layers that change them."""
    net = sections[0][1]
    c = int(net.get("channels", 3))
    out_c = []  # output channels per layer index
    convs = []
    for index, (name, opts, lineno) in enumerate(sections[1:]):
        where = f"{cfg_path}: [{name}] (layer {index}, line {lineno})"
        if name in ("convolutional", "conv"):
            filters, size = int(opts.get("filters", 1)), int(opts.get("size", 1))
            groups = int(opts.get("groups", 1))
            if groups != 1:
                raise Refused(f"{where} groups: grouped convolutions are not in torchvision's ResNet")
            convs.append((index, where, filters, c, size, int(opts.get("batch_normalize", 0))))
            c = filters
        elif name == "route":
            layers = [int(x) for x in opts["layers"].split(",")]
            c = sum(out_c[x if x >= 0 else index + x] for x in layers)
        elif name in DISTILL_SECTIONS or name in ("maxpool", "max", "avgpool", "avg", "shortcut",
                                                   "softmax", "dropout", "activation"):
            pass
        elif name in LEARNED_SECTIONS:
            raise Refused(f"{where}: the converter writes [convolutional] layers only")
        else:
            raise Refused(f"{where}: a layer type the converter does not know")
        out_c.append(c)
    return convs


def torch_layers(state):
    """[(name, weight, bn_prefix or None, bias or None)] for every convolution in the state
    dict's order, and fc as a 1x1 convolution with its bias."""
    keys = [k for k in state if not k.endswith("num_batches_tracked")]
    out = []
    for i, k in enumerate(keys):
        t = state[k]
        if k.endswith(".weight") and t.dim() == 4:
            prefix = k[: -len(".weight")]
            nxt = keys[i + 1] if i + 1 < len(keys) else ""
            bn = nxt[: -len(".weight")] if nxt.endswith(".weight") and state[nxt].dim() == 1 else None
            if bn is not None and bn + ".running_var" not in state:
                bn = None
            bias = state.get(prefix + ".bias")
            out.append((prefix, t, bn, bias))
        elif k.endswith(".weight") and t.dim() == 2:
            prefix = k[: -len(".weight")]
            out.append((prefix, t.reshape(t.shape[0], t.shape[1], 1, 1), None, state.get(prefix + ".bias")))
    return out


def convert(pth, cfg_path, out_path):
    refuse_outputs("torchvision_to_darknet.py", [(out_path, "the output weights")],
                   [(pth, "the state dict"), (cfg_path, "the cfg")])
    import torch

    try:
        state = torch.load(pth, map_location="cpu")
    except Exception as e:  # a corrupt or foreign file: say which
        raise Refused(f"{pth}: cannot read a PyTorch state dict: {str(e).splitlines()[0]}")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(hasattr(v, "dim") for v in state.values()):
        raise Refused(f"{pth}: not a state dict of tensors (save model.state_dict())")
    convs = conv_layers(cfg_path, read_cfg(cfg_path))
    tensors = torch_layers(state)
    if len(tensors) != len(convs):
        raise Refused(f"{pth}: {len(tensors)} convolutions and fc in the state dict, but {cfg_path} "
                      f"has {len(convs)} [convolutional] layers: not the network of this cfg")
    blobs = []
    for (index, where, filters, channels, size, bn), (name, w, bn_name, bias) in zip(convs, tensors):
        want = (filters, channels, size, size)
        if tuple(w.shape) != want:
            raise Refused(f"{where} filters/size: expects weights {list(want)}, but {pth} has "
                          f"{name}.weight {list(w.shape)}")
        if bn:
            if bn_name is None:
                raise Refused(f"{where} batch_normalize: =1, but {pth} has no BatchNorm after {name}")
            named = [(f"{bn_name}.{k}", state[f"{bn_name}.{k}"]) for k in ("bias", "weight", "running_mean", "running_var")]
        else:
            if bn_name is not None:
                raise Refused(f"{where} batch_normalize: =0, but {pth} has BatchNorm {bn_name} after {name}")
            named = [(f"{name}.bias", bias if bias is not None else torch.zeros(filters))]
        named.append((f"{name}.weight", w))
        for tensor, t in named:
            # Darknet would load NaN or Inf as they are, and training would stop at layer 0
            if not bool(torch.isfinite(t).all()):
                raise Refused(f"{pth}: {tensor} holds NaN or Inf: refusing to convert it, nothing written")
        blobs += [t.detach().float().contiguous().reshape(-1) for _, t in named]
    # header: major 0, minor 2, revision 0, seen (size_t); written whole or not at all
    write_all([(out_path, struct.pack("<iiiQ", 0, 2, 0, 0) +
                b"".join(b.numpy().astype("<f4").tobytes() for b in blobs))])
    return len(convs), sum(b.numel() for b in blobs)


def main(argv):
    if len(argv) != 4:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 1
    layers, floats = one_line_failures(lambda: convert(argv[1], argv[2], argv[3]))
    print(f"{argv[3]}: {layers} convolutional layers, {floats} floats from {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
