"""Model zoo: 19 torchvision ImageNet classifiers, written as layer specs.

Each builder (``resnet50(num_classes=1000, resolution=224)``, ...) returns the
layer records of the network torchvision builds, module for module, in the
order its ``forward`` runs them in eval mode, so that memory metrics
(``peak_act_bytes``, ...) see the same tensors torch allocates:

* ``nn.ReLU(inplace=True)`` (and every activation torchvision's
  ``Conv2dNormActivation`` creates, which default to ``inplace=True``) is an
  in-place activation record; activations torchvision creates without
  ``inplace`` (the ReLU inside ``SqueezeExcitation``, hard-sigmoid/sigmoid
  gates, ConvNeXt's GELU) allocate.
* ``out += identity`` (ResNet, MobileNetV3, EfficientNet, ConvNeXt) is an
  ``add`` record carrying ``Flag.INPLACE``; ``x + f(x)`` (MobileNetV2, RegNet)
  is a plain ``add``.
* Dropout layers are present (a view at inference); stochastic depth is the
  identity at inference and is omitted.
* Biases, affine norms, ``ceil_mode`` pooling (SqueezeNet, GoogLeNet) and
  adaptive pool sizes (AlexNet 6x6, VGG 7x7) are as in torchvision.
* ShuffleNetV2's ``x.chunk(2, dim=1)`` is two ``slice`` views and its
  ``channel_shuffle`` the ``channel_shuffle`` op; SE blocks are
  global pool -> 1x1 conv (bias) -> act -> 1x1 conv (bias) -> gate -> ``mul``.
* DenseNet concatenates all earlier features before every dense layer
  (``torch.cat(inputs, 1)``, a copy even for one input); the builder chains
  joins of more than four tensors.
* GoogLeNet is the pretrained torchvision model's graph: no auxiliary heads.
  Its ``transform_input`` pre-processing (per-channel ``x * a + b`` on the
  three input channels, then a concat; no MACs, no parameters) has no
  parameter-free constant-affine op to express it and is left out.

ConvNeXt mappings (torchvision ``convnext.py``):

==============================  ============================================
torchvision                     nasflops records
==============================  ============================================
``LayerNorm2d`` / ``LayerNorm``  ``layernorm`` (over channels per position)
``Permute``                     nothing (a view)
``nn.Linear`` on channels-last  1x1 ``conv`` with bias: same parameters and
                                the same MACs (H*W rows of a matmul)
``nn.GELU()``                   ``act`` gelu (allocates)
``layer_scale * block(x)``      ``scale`` without bias (C parameters)
``StochasticDepth``             omitted (identity in eval)
``result += input``             in-place ``add``
==============================  ============================================

The zoo is also a search space (``get_space("zoo", resolution=224)``) whose
native encoding is the model name.  :data:`PUBLISHED` holds torchvision's
published MACs ("GFLOPS") and parameter counts for each model.

Examples
--------
>>> import nasflops
>>> from nasflops.search_spaces import zoo
>>> r = nasflops.score(zoo.resnet50())
>>> int(r["params"][0]), int(r["macs"][0])
(25557032, 4089184256)
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Mapping, Sequence

import numpy as np

from nasflops.options import positive_int
from nasflops.spec import Net, Op, SpecBatch
from .base import SearchSpace, make_divisible
from .columns import NativeError

__all__ = ["MODELS", "PUBLISHED", "MODEL_NAMES", "build", "ZooSpace",
           "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
           "vgg11", "vgg16", "vgg19", "alexnet", "mobilenet_v2",
           "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0",
           "densenet121", "shufflenet_v2_x1_0", "squeezenet1_0", "googlenet",
           "regnet_y_400mf", "convnext_tiny"]


class _Net(Net):
    """:class:`~nasflops.Net` plus the few idioms torchvision models use.

    It also tracks each layer's channel count while building (ops that keep
    or set channels only; flatten is not tracked), which the SE block needs
    to expand back to its input width.
    """

    def __init__(self, channels: int, height: int, width: int):
        self._width: dict[int, int] = {}
        super().__init__(channels, height, width)
        self._width[0] = int(channels)

    def conv_norm_act(self, x: int, out: int, kernel: int, stride: int = 1,
                      padding: int | None = None, groups: int = 1, dilation: int = 1,
                      norm: bool = True, act: str | None = "relu", inplace: bool = True,
                      bias: bool | None = None) -> int:
        """torchvision's ``Conv2dNormActivation`` (BatchNorm, in-place act).

        Padding defaults to ``(kernel - 1) // 2 * dilation`` and the conv has a
        bias only without a norm, as there.
        """
        if padding is None:
            padding = (kernel - 1) // 2 * dilation
        if bias is None:
            bias = not norm
        x = self.conv(x, out, kernel, stride=stride, padding=padding,
                      dilation=dilation, groups=groups, bias=bias)
        if norm:
            x = self.bn(x)
        if act is not None:
            x = self.act(x, act, inplace=inplace)
        return x

    def squeeze_excitation(self, x: int, squeeze: int, act: str = "relu",
                           act_inplace: bool = False, gate: str = "sigmoid") -> int:
        """torchvision's ``ops.misc.SqueezeExcitation``: ``gate(x) * x``."""
        s = self.global_avgpool(x)
        s = self.conv(s, squeeze, 1, bias=True)
        s = self.act(s, act, inplace=act_inplace)
        s = self.conv(s, self._channels(x), 1, bias=True)
        s = self.act(s, gate)
        return self.mul(x, s)

    def _channels(self, x: int) -> int:
        return self._width[x]

    def _append(self, op, inputs, **fields):
        idx = super()._append(op, inputs, **fields)
        c = self._width[int(inputs[0])]
        if op in (Op.CONV2D, Op.LINEAR, Op.SLICE):
            c = int(fields["out_channels"])
        elif op == Op.CONCAT:
            c = sum(self._width[int(i)] for i in inputs)
        self._width[idx] = c
        return idx


def _new(resolution: int) -> _Net:
    resolution = int(resolution)
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    return _Net(3, resolution, resolution)


def _adjust(channels: int, width_mult: float = 1.0) -> int:
    """``adjust_channels`` of MobileNetV3/EfficientNet configs (multiple of 8)."""
    return make_divisible(channels * width_mult, 8)


# ---------------------------------------------------------------------------
# ResNet (torchvision/models/resnet.py)
# ---------------------------------------------------------------------------
def _basic_block(net: _Net, x: int, planes: int, stride: int, downsample: bool) -> int:
    out = net.conv(x, planes, 3, stride=stride, padding=1)
    out = net.bn(out)
    out = net.act(out, "relu", inplace=True)
    out = net.conv(out, planes, 3, padding=1)
    out = net.bn(out)
    identity = x
    if downsample:  # runs after the main branch in forward()
        identity = net.bn(net.conv(x, planes, 1, stride=stride))
    out = net.add(out, identity, inplace=True)
    return net.act(out, "relu", inplace=True)


def _bottleneck(net: _Net, x: int, planes: int, stride: int, downsample: bool) -> int:
    width = planes  # groups=1, base_width=64
    out = net.act(net.bn(net.conv(x, width, 1)), "relu", inplace=True)
    # torchvision (ResNet V1.5) strides the 3x3 conv
    out = net.act(net.bn(net.conv(out, width, 3, stride=stride, padding=1)), "relu", inplace=True)
    out = net.bn(net.conv(out, planes * 4, 1))
    identity = x
    if downsample:
        identity = net.bn(net.conv(x, planes * 4, 1, stride=stride))
    out = net.add(out, identity, inplace=True)
    return net.act(out, "relu", inplace=True)


def _resnet(bottleneck: bool, layers: Sequence[int], num_classes: int, resolution: int) -> np.ndarray:
    net = _new(resolution)
    block, expansion = (_bottleneck, 4) if bottleneck else (_basic_block, 1)
    x = net.conv(net.input, 64, 7, stride=2, padding=3)
    x = net.act(net.bn(x), "relu", inplace=True)
    x = net.maxpool(x, 3, stride=2, padding=1)
    inplanes = 64
    for planes, blocks, stride in zip((64, 128, 256, 512), layers, (1, 2, 2, 2)):
        downsample = stride != 1 or inplanes != planes * expansion
        x = block(net, x, planes, stride, downsample)
        inplanes = planes * expansion
        for _ in range(1, blocks):
            x = block(net, x, planes, 1, False)
    x = net.flatten(net.global_avgpool(x))
    net.linear(x, num_classes)
    return net.records


def resnet18(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """ResNet-18 (torchvision ``resnet18``)."""
    return _resnet(False, (2, 2, 2, 2), num_classes, resolution)


def resnet34(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """ResNet-34 (torchvision ``resnet34``)."""
    return _resnet(False, (3, 4, 6, 3), num_classes, resolution)


def resnet50(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """ResNet-50 V1.5 (torchvision ``resnet50``).

    >>> import nasflops
    >>> int(nasflops.score(resnet50())["params"][0])
    25557032
    """
    return _resnet(True, (3, 4, 6, 3), num_classes, resolution)


def resnet101(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """ResNet-101 V1.5 (torchvision ``resnet101``)."""
    return _resnet(True, (3, 4, 23, 3), num_classes, resolution)


def resnet152(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """ResNet-152 V1.5 (torchvision ``resnet152``)."""
    return _resnet(True, (3, 8, 36, 3), num_classes, resolution)


# ---------------------------------------------------------------------------
# VGG (vgg.py) and AlexNet (alexnet.py)
# ---------------------------------------------------------------------------
_VGG_CFGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


def _vgg(cfg: str, num_classes: int, resolution: int) -> np.ndarray:
    net = _new(resolution)
    x = net.input
    for v in _VGG_CFGS[cfg]:
        if v == "M":
            x = net.maxpool(x, 2, stride=2)
        else:
            x = net.act(net.conv(x, v, 3, padding=1, bias=True), "relu", inplace=True)
    x = net.flatten(net.adaptive_avgpool(x, 7))
    x = net.dropout(net.act(net.linear(x, 4096), "relu", inplace=True))
    x = net.dropout(net.act(net.linear(x, 4096), "relu", inplace=True))
    net.linear(x, num_classes)
    return net.records


def vgg11(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """VGG-11 without batch norm (torchvision ``vgg11``)."""
    return _vgg("A", num_classes, resolution)


def vgg16(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """VGG-16 without batch norm (torchvision ``vgg16``)."""
    return _vgg("D", num_classes, resolution)


def vgg19(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """VGG-19 without batch norm (torchvision ``vgg19``)."""
    return _vgg("E", num_classes, resolution)


def alexnet(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """AlexNet, "one weird trick" variant (torchvision ``alexnet``)."""
    net = _new(resolution)
    x = net.act(net.conv(net.input, 64, 11, stride=4, padding=2, bias=True), "relu", inplace=True)
    x = net.maxpool(x, 3, stride=2)
    x = net.act(net.conv(x, 192, 5, padding=2, bias=True), "relu", inplace=True)
    x = net.maxpool(x, 3, stride=2)
    x = net.act(net.conv(x, 384, 3, padding=1, bias=True), "relu", inplace=True)
    x = net.act(net.conv(x, 256, 3, padding=1, bias=True), "relu", inplace=True)
    x = net.act(net.conv(x, 256, 3, padding=1, bias=True), "relu", inplace=True)
    x = net.maxpool(x, 3, stride=2)
    x = net.flatten(net.adaptive_avgpool(x, 6))
    x = net.act(net.linear(net.dropout(x), 4096), "relu", inplace=True)
    x = net.act(net.linear(net.dropout(x), 4096), "relu", inplace=True)
    net.linear(x, num_classes)
    return net.records


# ---------------------------------------------------------------------------
# MobileNetV2 (mobilenetv2.py), MobileNetV3 (mobilenetv3.py)
# ---------------------------------------------------------------------------
def mobilenet_v2(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """MobileNetV2, width 1.0 (torchvision ``mobilenet_v2``)."""
    net = _new(resolution)
    setting = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    inp = make_divisible(32, 8)
    last = make_divisible(1280, 8)
    x = net.conv_norm_act(net.input, inp, 3, stride=2, act="relu6")
    for t, c, n, s in setting:
        oup = make_divisible(c, 8)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = int(round(inp * t))
            y = x
            if t != 1:
                y = net.conv_norm_act(y, hidden, 1, act="relu6")
            y = net.conv_norm_act(y, hidden, 3, stride=stride, groups=hidden, act="relu6")
            y = net.bn(net.conv(y, oup, 1))
            # ``x + self.conv(x)``: a new tensor, not in place
            x = net.add(x, y) if stride == 1 and inp == oup else y
            inp = oup
    x = net.conv_norm_act(x, last, 1, act="relu6")
    x = net.flatten(net.global_avgpool(x))
    net.linear(net.dropout(x), num_classes)
    return net.records


_MBV3_LARGE = [  # in, kernel, expanded, out, use_se, activation, stride
    (16, 3, 16, 16, False, "RE", 1), (16, 3, 64, 24, False, "RE", 2),
    (24, 3, 72, 24, False, "RE", 1), (24, 5, 72, 40, True, "RE", 2),
    (40, 5, 120, 40, True, "RE", 1), (40, 5, 120, 40, True, "RE", 1),
    (40, 3, 240, 80, False, "HS", 2), (80, 3, 200, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1), (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 480, 112, True, "HS", 1), (112, 3, 672, 112, True, "HS", 1),
    (112, 5, 672, 160, True, "HS", 2), (160, 5, 960, 160, True, "HS", 1),
    (160, 5, 960, 160, True, "HS", 1),
]
_MBV3_SMALL = [
    (16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2),
    (24, 3, 88, 24, False, "RE", 1), (24, 5, 96, 40, True, "HS", 2),
    (40, 5, 240, 40, True, "HS", 1), (40, 5, 240, 40, True, "HS", 1),
    (40, 5, 120, 48, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1),
    (48, 5, 288, 96, True, "HS", 2), (96, 5, 576, 96, True, "HS", 1),
    (96, 5, 576, 96, True, "HS", 1),
]


def _mobilenet_v3(setting, last_channel: int, num_classes: int, resolution: int) -> np.ndarray:
    net = _new(resolution)
    x = net.conv_norm_act(net.input, _adjust(setting[0][0]), 3, stride=2, act="hardswish")
    for cin, k, exp, cout, use_se, a, stride in setting:
        cin, exp, cout = _adjust(cin), _adjust(exp), _adjust(cout)
        act = "hardswish" if a == "HS" else "relu"
        y = x
        if exp != cin:
            y = net.conv_norm_act(y, exp, 1, act=act)
        y = net.conv_norm_act(y, exp, k, stride=stride, groups=exp, act=act)
        if use_se:
            y = net.squeeze_excitation(y, make_divisible(exp // 4, 8), act="relu",
                                       gate="hardsigmoid")
        y = net.conv_norm_act(y, cout, 1, act=None)
        x = net.add(y, x, inplace=True) if stride == 1 and cin == cout else y
    x = net.conv_norm_act(x, 6 * _adjust(setting[-1][3]), 1, act="hardswish")
    x = net.flatten(net.global_avgpool(x))
    x = net.act(net.linear(x, _adjust(last_channel)), "hardswish", inplace=True)
    net.linear(net.dropout(x), num_classes)
    return net.records


def mobilenet_v3_large(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """MobileNetV3-Large (torchvision ``mobilenet_v3_large``)."""
    return _mobilenet_v3(_MBV3_LARGE, 1280, num_classes, resolution)


def mobilenet_v3_small(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """MobileNetV3-Small (torchvision ``mobilenet_v3_small``)."""
    return _mobilenet_v3(_MBV3_SMALL, 1024, num_classes, resolution)


# ---------------------------------------------------------------------------
# EfficientNet-B0 (efficientnet.py)
# ---------------------------------------------------------------------------
def efficientnet_b0(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """EfficientNet-B0 (torchvision ``efficientnet_b0``; width and depth 1.0)."""
    net = _new(resolution)
    # expand_ratio, kernel, stride, in, out, layers
    setting = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2),
               (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
               (6, 3, 1, 192, 320, 1)]
    x = net.conv_norm_act(net.input, _adjust(setting[0][3]), 3, stride=2, act="silu")
    for t, k, s, cin0, cout, n in setting:
        cout = _adjust(cout)
        for i in range(int(math.ceil(n * 1.0))):
            cin, stride = (_adjust(cin0), s) if i == 0 else (cout, 1)
            exp = make_divisible(cin * t, 8)
            y = x
            if exp != cin:
                y = net.conv_norm_act(y, exp, 1, act="silu")
            y = net.conv_norm_act(y, exp, k, stride=stride, groups=exp, act="silu")
            # SE with ``partial(nn.SiLU, inplace=True)`` and a sigmoid gate
            y = net.squeeze_excitation(y, max(1, cin // 4), act="silu", act_inplace=True,
                                       gate="sigmoid")
            y = net.conv_norm_act(y, cout, 1, act=None)
            x = net.add(y, x, inplace=True) if stride == 1 and cin == cout else y
    x = net.conv_norm_act(x, 4 * _adjust(setting[-1][4]), 1, act="silu")
    x = net.flatten(net.global_avgpool(x))
    net.linear(net.dropout(x), num_classes)
    return net.records


# ---------------------------------------------------------------------------
# DenseNet-121 (densenet.py)
# ---------------------------------------------------------------------------
def densenet121(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """DenseNet-121 (torchvision ``densenet121``; growth 32, bn_size 4)."""
    growth, bn_size, block_config, num_features = 32, 4, (6, 12, 24, 16), 64
    net = _new(resolution)
    x = net.conv(net.input, num_features, 7, stride=2, padding=3)
    x = net.act(net.bn(x), "relu", inplace=True)
    x = net.maxpool(x, 3, stride=2, padding=1)
    for i, num_layers in enumerate(block_config):
        features = [x]
        for _ in range(num_layers):
            # bn_function: torch.cat(inputs, 1) -> norm1 -> relu1 -> conv1
            y = net.concat(*features)
            y = net.act(net.bn(y), "relu", inplace=True)
            y = net.conv(y, bn_size * growth, 1)
            y = net.act(net.bn(y), "relu", inplace=True)
            features.append(net.conv(y, growth, 3, padding=1))
        x = net.concat(*features)
        num_features += num_layers * growth
        if i != len(block_config) - 1:
            num_features //= 2
            x = net.act(net.bn(x), "relu", inplace=True)
            x = net.conv(x, num_features, 1)
            x = net.avgpool(x, 2, stride=2)
    x = net.act(net.bn(x), "relu", inplace=True)  # norm5, then F.relu(inplace=True)
    x = net.flatten(net.global_avgpool(x))
    net.linear(x, num_classes)
    return net.records


# ---------------------------------------------------------------------------
# ShuffleNetV2 x1.0 (shufflenetv2.py)
# ---------------------------------------------------------------------------
def shufflenet_v2_x1_0(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """ShuffleNetV2 1.0x (torchvision ``shufflenet_v2_x1_0``)."""
    repeats, channels = (4, 8, 4), (24, 116, 232, 464, 1024)
    net = _new(resolution)
    x = net.act(net.bn(net.conv(net.input, channels[0], 3, stride=2, padding=1)), "relu", inplace=True)
    x = net.maxpool(x, 3, stride=2, padding=1)
    inp = channels[0]
    for n, oup in zip(repeats, channels[1:4]):
        half = oup // 2
        for i in range(n):
            if i == 0:  # stride 2: both branches see the whole input
                b1 = net.bn(net.conv(x, inp, 3, stride=2, padding=1, groups=inp))
                b1 = net.act(net.bn(net.conv(b1, half, 1)), "relu", inplace=True)
                src = x
            else:       # stride 1: x.chunk(2, dim=1)
                b1 = net.slice(x, 0, half)
                src = net.slice(x, half, half)
            b2 = net.act(net.bn(net.conv(src, half, 1)), "relu", inplace=True)
            b2 = net.bn(net.conv(b2, half, 3, stride=2 if i == 0 else 1, padding=1, groups=half))
            b2 = net.act(net.bn(net.conv(b2, half, 1)), "relu", inplace=True)
            x = net.channel_shuffle(net.concat(b1, b2), 2)
        inp = oup
    x = net.act(net.bn(net.conv(x, channels[4], 1)), "relu", inplace=True)
    x = net.global_avgpool(x)  # x.mean([2, 3])
    net.linear(x, num_classes)
    return net.records


# ---------------------------------------------------------------------------
# SqueezeNet 1.0 (squeezenet.py)
# ---------------------------------------------------------------------------
def _fire(net: _Net, x: int, squeeze: int, e1: int, e3: int) -> int:
    x = net.act(net.conv(x, squeeze, 1, bias=True), "relu", inplace=True)
    a = net.act(net.conv(x, e1, 1, bias=True), "relu", inplace=True)
    b = net.act(net.conv(x, e3, 3, padding=1, bias=True), "relu", inplace=True)
    return net.concat(a, b)


def squeezenet1_0(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """SqueezeNet 1.0 (torchvision ``squeezenet1_0``)."""
    net = _new(resolution)
    x = net.act(net.conv(net.input, 96, 7, stride=2, bias=True), "relu", inplace=True)
    x = net.maxpool(x, 3, stride=2, ceil_mode=True)
    x = _fire(net, x, 16, 64, 64)
    x = _fire(net, x, 16, 64, 64)
    x = _fire(net, x, 32, 128, 128)
    x = net.maxpool(x, 3, stride=2, ceil_mode=True)
    x = _fire(net, x, 32, 128, 128)
    x = _fire(net, x, 48, 192, 192)
    x = _fire(net, x, 48, 192, 192)
    x = _fire(net, x, 64, 256, 256)
    x = net.maxpool(x, 3, stride=2, ceil_mode=True)
    x = _fire(net, x, 64, 256, 256)
    x = net.conv(net.dropout(x), num_classes, 1, bias=True)
    x = net.act(x, "relu", inplace=True)
    net.flatten(net.global_avgpool(x))
    return net.records


# ---------------------------------------------------------------------------
# GoogLeNet (googlenet.py)
# ---------------------------------------------------------------------------
def _basic_conv(net: _Net, x: int, out: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    # BasicConv2d: conv (no bias) -> BN(eps=1e-3) -> F.relu(inplace=True)
    x = net.conv(x, out, kernel, stride=stride, padding=padding)
    return net.act(net.bn(x), "relu", inplace=True)


def _inception(net: _Net, x: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pool: int) -> int:
    b1 = _basic_conv(net, x, c1, 1)
    b2 = _basic_conv(net, _basic_conv(net, x, c3r, 1), c3, 3, padding=1)
    # kernel 3 in the "5x5" branch is torchvision's known quirk (vision#906)
    b3 = _basic_conv(net, _basic_conv(net, x, c5r, 1), c5, 3, padding=1)
    b4 = _basic_conv(net, net.maxpool(x, 3, stride=1, padding=1, ceil_mode=True), pool, 1)
    return net.concat(b1, b2, b3, b4)


def googlenet(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """GoogLeNet / Inception v1 as torchvision's pretrained model (no aux heads).

    ``transform_input`` is not represented (see the module docstring).
    """
    net = _new(resolution)
    x = _basic_conv(net, net.input, 64, 7, stride=2, padding=3)
    x = net.maxpool(x, 3, stride=2, ceil_mode=True)
    x = _basic_conv(net, x, 64, 1)
    x = _basic_conv(net, x, 192, 3, padding=1)
    x = net.maxpool(x, 3, stride=2, ceil_mode=True)
    x = _inception(net, x, 64, 96, 128, 16, 32, 32)
    x = _inception(net, x, 128, 128, 192, 32, 96, 64)
    x = net.maxpool(x, 3, stride=2, ceil_mode=True)
    x = _inception(net, x, 192, 96, 208, 16, 48, 64)
    x = _inception(net, x, 160, 112, 224, 24, 64, 64)
    x = _inception(net, x, 128, 128, 256, 24, 64, 64)
    x = _inception(net, x, 112, 144, 288, 32, 64, 64)
    x = _inception(net, x, 256, 160, 320, 32, 128, 128)
    x = net.maxpool(x, 2, stride=2, ceil_mode=True)
    x = _inception(net, x, 256, 160, 320, 32, 128, 128)
    x = _inception(net, x, 384, 192, 384, 48, 128, 128)
    x = net.flatten(net.global_avgpool(x))
    net.linear(net.dropout(x), num_classes)
    return net.records


# ---------------------------------------------------------------------------
# RegNetY-400MF (regnet.py)
# ---------------------------------------------------------------------------
def _regnet_block_params(depth: int, w_0: int, w_a: float, w_m: float, group_width: int,
                         bottleneck_multiplier: float = 1.0):
    """``BlockParams.from_init_params``: per-stage (width, depth, group width).

    torchvision computes in float32 tensors; numpy float32 reproduces it.
    """
    f32 = np.float32
    widths_cont = np.arange(depth, dtype=f32) * f32(w_a) + f32(w_0)
    block_capacity = np.round(np.log(widths_cont / f32(w_0)) / f32(math.log(w_m)))
    block_widths = (np.round(f32(w_0) * np.power(f32(w_m), block_capacity) / f32(8)) * 8)
    block_widths = block_widths.astype(np.int64).tolist()
    splits = [w != wp for w, wp in zip(block_widths + [0], [0] + block_widths)]
    stage_widths = [w for w, t in zip(block_widths, splits[:-1]) if t]
    stage_depths = np.diff([d for d, t in enumerate(splits) if t]).tolist()
    # _adjust_widths_groups_compatibilty
    w_bots = [int(w * bottleneck_multiplier) for w in stage_widths]
    groups = [min(group_width, wb) for wb in w_bots]
    w_bots = [make_divisible(wb, g) for wb, g in zip(w_bots, groups)]
    stage_widths = [int(wb / bottleneck_multiplier) for wb in w_bots]
    return list(zip(stage_widths, stage_depths, groups))


def regnet_y_400mf(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """RegNetY-400MF (torchvision ``regnet_y_400mf``)."""
    se_ratio, bottleneck_multiplier = 0.25, 1.0
    stages = _regnet_block_params(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8)
    net = _new(resolution)
    x = net.conv_norm_act(net.input, 32, 3, stride=2)  # SimpleStemIN
    width_in = 32
    for width_out, depth, group_width in stages:
        for i in range(depth):
            stride = 2 if i == 0 else 1
            w_in = width_in if i == 0 else width_out
            # forward: ``self.proj(x) + self.f(x)``, proj evaluated first
            skip = x
            if w_in != width_out or stride != 1:
                skip = net.conv_norm_act(x, width_out, 1, stride=stride, act=None)
            w_b = int(round(width_out * bottleneck_multiplier))
            y = net.conv_norm_act(x, w_b, 1)
            y = net.conv_norm_act(y, w_b, 3, stride=stride, groups=w_b // group_width)
            y = net.squeeze_excitation(y, int(round(se_ratio * w_in)), act="relu", gate="sigmoid")
            y = net.conv_norm_act(y, width_out, 1, act=None)
            x = net.act(net.add(skip, y), "relu", inplace=True)
        width_in = width_out
    x = net.flatten(net.global_avgpool(x))
    net.linear(x, num_classes)
    return net.records


# ---------------------------------------------------------------------------
# ConvNeXt-Tiny (convnext.py)
# ---------------------------------------------------------------------------
def convnext_tiny(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
    """ConvNeXt-Tiny (torchvision ``convnext_tiny``); mappings in the module docstring."""
    stages = [(96, 192, 3), (192, 384, 3), (384, 768, 9), (768, None, 3)]
    net = _new(resolution)
    # stem: Conv2dNormActivation(3, 96, k=4, s=4, p=0, LayerNorm2d, no act, bias)
    x = net.layernorm(net.conv(net.input, stages[0][0], 4, stride=4, bias=True))
    for dim, out, n in stages:
        for _ in range(n):
            y = net.conv(x, dim, 7, padding=3, groups=dim, bias=True)
            y = net.layernorm(y)
            y = net.conv(y, 4 * dim, 1, bias=True)       # Linear(dim, 4 dim)
            y = net.act(y, "gelu")
            y = net.conv(y, dim, 1, bias=True)           # Linear(4 dim, dim)
            y = net.scale(y)                             # layer_scale * ...
            x = net.add(y, x, inplace=True)                           # result += input
        if out is not None:
            x = net.conv(net.layernorm(x), out, 2, stride=2, bias=True)
    x = net.global_avgpool(x)
    x = net.flatten(net.layernorm(x))
    net.linear(x, num_classes)
    return net.records


# ---------------------------------------------------------------------------
# registry, published figures, the space
# ---------------------------------------------------------------------------
#: model name -> builder ``(num_classes=1000, resolution=224) -> records``,
#: in the zoo's fixed enumeration order
MODELS: dict[str, Callable[..., np.ndarray]] = {
    f.__name__: f for f in (
        resnet18, resnet34, resnet50, resnet101, resnet152, vgg11, vgg16, vgg19,
        alexnet, mobilenet_v2, mobilenet_v3_large, mobilenet_v3_small,
        efficientnet_b0, densenet121, shufflenet_v2_x1_0, squeezenet1_0,
        googlenet, regnet_y_400mf, convnext_tiny)
}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)

#: model name -> (GMACs at 224x224 with 3 decimals, exact parameter count),
#: as torchvision publishes them: the "GFLOPS" and "Params" columns of its
#: model documentation (https://pytorch.org/vision/stable/models.html), i.e.
#: ``weights.meta["_ops"]`` and ``weights.meta["num_params"]`` of each
#: model's IMAGENET1K_V1 weights in torchvision/models/*.py.  ``_ops`` is
#: conv + matmul multiply-accumulates (no bias), measured by torchvision's
#: test/common_extended_utils.py and rounded with ``round(x / 1e9, 3)``.
#: vgg16's figure is written ``15.47`` there (a float literal drops the
#: trailing zero).
PUBLISHED: dict[str, tuple[str, int]] = {
    "resnet18": ("1.814", 11_689_512),
    "resnet34": ("3.664", 21_797_672),
    "resnet50": ("4.089", 25_557_032),
    "resnet101": ("7.801", 44_549_160),
    "resnet152": ("11.514", 60_192_808),
    "vgg11": ("7.609", 132_863_336),
    "vgg16": ("15.470", 138_357_544),
    "vgg19": ("19.632", 143_667_240),
    "alexnet": ("0.714", 61_100_840),
    "mobilenet_v2": ("0.301", 3_504_872),
    "mobilenet_v3_large": ("0.217", 5_483_032),
    "mobilenet_v3_small": ("0.057", 2_542_856),
    "efficientnet_b0": ("0.386", 5_288_548),
    "densenet121": ("2.834", 7_978_856),
    "shufflenet_v2_x1_0": ("0.145", 2_278_604),
    "squeezenet1_0": ("0.819", 1_248_424),
    "googlenet": ("1.498", 6_624_904),
    "regnet_y_400mf": ("0.402", 4_344_144),
    "convnext_tiny": ("4.456", 28_589_128),
}


@functools.lru_cache(maxsize=64)
def _cached(name: str, resolution: int, num_classes: int) -> np.ndarray:
    rec = MODELS[name](num_classes=num_classes, resolution=resolution)
    rec.setflags(write=False)
    return rec


def build(name: str, resolution: int = 224, num_classes: int = 1000) -> np.ndarray:
    """Records of zoo model ``name`` (cached; a writable copy is returned).

    >>> import nasflops
    >>> int(nasflops.score(build("alexnet"))["params"][0])
    61100840
    """
    if name not in MODELS:
        raise ValueError(f"unknown zoo model {name!r}; known: {', '.join(MODEL_NAMES)}")
    return _cached(name, int(resolution), int(num_classes)).copy()


@functools.lru_cache(maxsize=8)
def _all_models(resolution: int, num_classes: int) -> SpecBatch:
    return SpecBatch.from_list([_cached(n, resolution, num_classes) for n in MODEL_NAMES])


class ZooSpace(SearchSpace):
    """The torchvision model zoo as a (small, enumerable) search space.

    Parameters
    ----------
    resolution : int
        Input height and width (224 is where :data:`PUBLISHED` applies).
    num_classes : int
        Classifier outputs.

    Registered as ``"zoo"``: ``nasflops.search_spaces.get_space("zoo",
    resolution=224)`` builds one.

    Examples
    --------
    >>> import nasflops
    >>> space = ZooSpace(resolution=224)
    >>> space.size
    19
    >>> int(nasflops.score(space.encode(["mobilenet_v2"]))["macs"][0])
    300774272
    """

    name = "zoo"
    reference = ("torchvision.models (pytorch/vision, torchvision/models/*.py); published "
                 "GFLOPS/params: https://pytorch.org/vision/stable/models.html")
    native_columns = {"model": "torchvision model name (str)"}
    native_example = "'resnet50'"

    def __init__(self, resolution: int = 224, num_classes: int = 1000):
        # bounded like every user-given size: records hold int32 fields
        self.resolution = positive_int(resolution, "zoo: resolution", 1, 1 << 16)
        self.num_classes = positive_int(num_classes, "zoo: num_classes", 1, 1 << 24)

    @property
    def params(self) -> dict:
        return {"resolution": self.resolution, "num_classes": self.num_classes}

    @property
    def size(self) -> int:
        return len(MODEL_NAMES)

    _names = np.array(MODEL_NAMES)
    _order = np.argsort(_names)   # zoo positions of the names, sorted
    _sorted = _names[_order]

    def _enumerate_block(self, start: int, stop: int) -> dict[str, np.ndarray]:
        return {"model": self._names[start:stop].copy()}

    def _sample_block(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        return {"model": self._names[rng.integers(0, len(self._names), size=n)]}

    def _indices(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """Zoo position of every row's model name, vectorised, validated."""
        try:
            models = cols["model"]
        except KeyError:
            raise NativeError(self.name, None, "model", "missing column") from None
        models = np.asarray(models)
        if models.ndim != 1:
            raise NativeError(self.name, None, "model", f"expected a 1-D column, got shape {models.shape}")
        if models.size and models.dtype.kind not in "UO":
            raise NativeError(self.name, None, "model", f"expected strings, got dtype {models.dtype}")
        models = models.astype(str) if models.dtype.kind == "O" else models
        pos = np.clip(np.searchsorted(self._sorted, models), 0, len(self._sorted) - 1)
        bad = self._sorted[pos] != models
        if np.any(bad):
            i = int(np.argmax(bad))
            raise NativeError(self.name, i, "model",
                              f"unknown model {str(models[i])!r}; known: {', '.join(MODEL_NAMES)}")
        return self._order[pos]

    def encode_columns(self, cols: Mapping[str, np.ndarray]) -> SpecBatch:
        return _all_models(self.resolution, self.num_classes).take(self._indices(cols))

    def decode(self, batch: SpecBatch) -> dict[str, np.ndarray]:
        """Model names of records this space encoded (a candidate equals one model's records)."""
        models = _all_models(self.resolution, self.num_classes)
        names = np.empty(len(batch), dtype=self._names.dtype)
        found = np.zeros(len(batch), dtype=bool)
        lengths = batch.lengths
        for m, name in enumerate(MODEL_NAMES):   # 19 models, each compared to same-length rows
            ref = models[m]
            for i in np.flatnonzero(~found & (lengths == len(ref))):
                if np.array_equal(batch[i], ref):
                    names[i], found[i] = name, True
        if not found.all():
            raise NativeError(self.name, int(np.argmax(~found)), "records",
                              f"not a zoo model at resolution {self.resolution}")
        return {"model": names}

    def to_columns(self, natives: Sequence) -> dict[str, np.ndarray]:
        if isinstance(natives, str):
            natives = [natives]
        natives = list(natives)
        for i, v in enumerate(natives):
            if not isinstance(v, str):
                raise NativeError(self.name, i, "model", f"expected a model name, got {type(v).__name__}")
        cols = {"model": np.array(natives, dtype=str) if natives else np.array([], dtype="<U1")}
        self._indices(cols)
        return cols

    def from_columns(self, cols: Mapping[str, np.ndarray]) -> list:
        return [str(v) for v in np.asarray(cols["model"]).tolist()]

    def arrow_columns(self, cols: Mapping[str, np.ndarray]) -> dict:
        import pyarrow as pa
        return {"model": pa.array(np.asarray(cols["model"]).astype(str), type=pa.string())}
