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
* Dropout layers are present (a view at inference); ``StochasticDepth``
  (EfficientNet, ConvNeXt) is the identity at inference: an ``identity``
  record where ``forward`` calls it.
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

**Names and call kinds.** Every record made by a module carries the
module's path in the torchvision model (``features.0``, ``layer1.0.conv1``,
``features.3.block.2.fc1``; :func:`build` with ``with_names=True``), and
every record says how torchvision's ``forward`` invokes it (``Call``, in
the tools' terms): ``F.relu`` (GoogLeNet's ``BasicConv2d``, DenseNet's
head), ``F.adaptive_avg_pool2d`` (MobileNetV2, DenseNet) and ShuffleNet's
``channel_shuffle`` are function calls, and so is ConvNeXt's
``LayerNorm2d`` (a subclass of ``nn.LayerNorm`` whose ``forward`` calls
``F.layer_norm``: unnamed, as its calls are what the tools see); ``x.mean([2, 3])``
(ShuffleNetV2: a ``mean``), ``x.chunk``, ``x.flatten(start_dim=1)`` (RegNet),
``torch.flatten`` and ``torch.cat`` are method calls (a ``torch.*``
function is a method to the tools: ptflops patches ``torch.add`` and
``Tensor.add`` alike); ``x + y``, ``out += identity`` and the SE and layer-scale
products are operators; records without a module are unnamed (``""``).
Modules called twice (ResNet's block ``relu``) name both records, so the
earlier call is flagged ``called_again``; :func:`modules` lists the modules
in torchvision's registration order (``named_modules``), including those
never called in eval mode (ShuffleNet's empty ``branch1``, EfficientNet's
unused ``stochastic_depth``).

ConvNeXt mappings (torchvision ``convnext.py``):

==============================  ============================================
torchvision                     nasflops records
==============================  ============================================
``LayerNorm``                    ``layernorm`` (over channels per position)
``LayerNorm2d``                  ``layernorm`` called as a function: its
                                ``forward`` permutes and calls
                                ``F.layer_norm`` (hook tools match module
                                types exactly and see the function)
``Permute``                     nothing (a view; no record, so no name)
``nn.Linear`` on channels-last  1x1 ``conv`` with bias: same parameters and
                                the same MACs (H*W rows of a matmul)
``nn.GELU()``                   ``act`` gelu (allocates)
``layer_scale * block(x)``      ``scale`` without bias (C parameters)
``StochasticDepth``             ``identity`` (eval)
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
>>> records, names = zoo.build("resnet18", with_names=True)
>>> names[1:5]
['conv1', 'bn1', 'relu', 'maxpool']
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Mapping, Sequence

import numpy as np

from nasflops.options import positive_int
from nasflops.spec import Net, Op, SpecBatch
from . import vision_transformers
from .base import SearchSpace, make_divisible
from .columns import NativeError

__all__ = ["MODELS", "PUBLISHED", "MODEL_NAMES", "build", "modules", "ZooSpace",
           "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
           "vgg11", "vgg16", "vgg19", "alexnet", "mobilenet_v2",
           "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0",
           "densenet121", "shufflenet_v2_x1_0", "squeezenet1_0", "googlenet",
           "regnet_y_400mf", "convnext_tiny"]


class _Seq:
    """Names of the children of an ``nn.Sequential`` at ``prefix``:
    ``prefix.0``, ``prefix.1``, ... in the order they are asked for."""

    def __init__(self, prefix: str):
        self.prefix, self.i = prefix, 0

    def __call__(self) -> str:
        self.i += 1
        return f"{self.prefix}.{self.i - 1}"


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

    def call(self, kind: str, method: str, *args, **kwargs) -> int:
        """One record made by a ``kind`` call (``"function"``: ``F.relu``,
        ``"method"``: ``x.mean``, ``torch.cat``, ``"operator"``: ``x + y``), not a
        module."""
        with self.calling(kind):
            return getattr(self, method)(*args, **kwargs)

    def conv_norm_act(self, x: int, out: int, kernel: int, stride: int = 1,
                      padding: int | None = None, groups: int = 1, dilation: int = 1,
                      norm: bool = True, act: str | None = "relu", inplace: bool = True,
                      bias: bool | None = None, name: str = "") -> int:
        """torchvision's ``Conv2dNormActivation`` (BatchNorm, in-place act), a
        Sequential named ``name``: ``name.0`` conv, ``name.1`` norm, ``name.2`` act.

        Padding defaults to ``(kernel - 1) // 2 * dilation`` and the conv has a
        bias only without a norm, as there.
        """
        if padding is None:
            padding = (kernel - 1) // 2 * dilation
        if bias is None:
            bias = not norm
        seq = _Seq(name)
        x = self.conv(x, out, kernel, stride=stride, padding=padding,
                      dilation=dilation, groups=groups, bias=bias, name=seq())
        if norm:
            x = self.bn(x, name=seq())
        if act is not None:
            x = self.act(x, act, inplace=inplace, name=seq())
        return x

    def squeeze_excitation(self, x: int, squeeze: int, act: str = "relu",
                           act_inplace: bool = False, gate: str = "sigmoid",
                           name: str = "") -> int:
        """torchvision's ``ops.misc.SqueezeExcitation`` at ``name``: ``scale * x``."""
        p = name + "."
        # registered avgpool, fc1, fc2, activation, scale_activation; run in
        # the order avgpool, fc1, activation, fc2, scale_activation
        self.declare(p + "avgpool", p + "fc1", p + "fc2", p + "activation", p + "scale_activation")
        s = self.global_avgpool(x, name=p + "avgpool")
        s = self.conv(s, squeeze, 1, bias=True, name=p + "fc1")
        s = self.act(s, act, inplace=act_inplace, name=p + "activation")
        s = self.conv(s, self._channels(x), 1, bias=True, name=p + "fc2")
        s = self.act(s, gate, name=p + "scale_activation")
        return self.call("operator", "mul", x, s)

    def _channels(self, x: int) -> int:
        return self._width[x]

    def _append(self, op, inputs, name="", **fields):
        idx = super()._append(op, inputs, name, **fields)
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


#: model name -> builder ``(num_classes, resolution) -> _Net``
_NETS: dict[str, Callable[[int, int], _Net]] = {}


def _model(fn: Callable[[int, int], _Net]) -> Callable[..., np.ndarray]:
    """Register ``fn`` (returning a :class:`_Net`) under its name, and return
    the public builder ``(num_classes=1000, resolution=224) -> records``."""
    _NETS[fn.__name__] = fn

    @functools.wraps(fn)
    def records(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
        return fn(num_classes, resolution).records
    records.__annotations__ = {"num_classes": int, "resolution": int, "return": np.ndarray}
    del records.__wrapped__          # its signature is the records builder's
    return records


# ---------------------------------------------------------------------------
# ResNet (torchvision/models/resnet.py)
# ---------------------------------------------------------------------------
def _basic_block(net: _Net, x: int, planes: int, stride: int, downsample: bool, p: str) -> int:
    out = net.conv(x, planes, 3, stride=stride, padding=1, name=p + "conv1")
    out = net.bn(out, name=p + "bn1")
    out = net.act(out, "relu", inplace=True, name=p + "relu")
    out = net.conv(out, planes, 3, padding=1, name=p + "conv2")
    out = net.bn(out, name=p + "bn2")
    identity = x
    if downsample:  # runs after the main branch in forward()
        identity = net.conv(x, planes, 1, stride=stride, name=p + "downsample.0")
        identity = net.bn(identity, name=p + "downsample.1")
    out = net.call("operator", "add", out, identity, inplace=True)      # out += identity
    return net.act(out, "relu", inplace=True, name=p + "relu")        # self.relu again


def _bottleneck(net: _Net, x: int, planes: int, stride: int, downsample: bool, p: str) -> int:
    width = planes  # groups=1, base_width=64
    # registered conv1, bn1, conv2, bn2, conv3, bn3, relu, downsample
    net.declare(*(p + m for m in ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "relu")))
    out = net.conv(x, width, 1, name=p + "conv1")
    out = net.act(net.bn(out, name=p + "bn1"), "relu", inplace=True, name=p + "relu")
    # torchvision (ResNet V1.5) strides the 3x3 conv
    out = net.conv(out, width, 3, stride=stride, padding=1, name=p + "conv2")
    out = net.act(net.bn(out, name=p + "bn2"), "relu", inplace=True, name=p + "relu")
    out = net.bn(net.conv(out, planes * 4, 1, name=p + "conv3"), name=p + "bn3")
    identity = x
    if downsample:
        identity = net.conv(x, planes * 4, 1, stride=stride, name=p + "downsample.0")
        identity = net.bn(identity, name=p + "downsample.1")
    out = net.call("operator", "add", out, identity, inplace=True)
    return net.act(out, "relu", inplace=True, name=p + "relu")


def _resnet(bottleneck: bool, layers: Sequence[int], num_classes: int, resolution: int) -> _Net:
    net = _new(resolution)
    block, expansion = (_bottleneck, 4) if bottleneck else (_basic_block, 1)
    x = net.conv(net.input, 64, 7, stride=2, padding=3, name="conv1")
    x = net.act(net.bn(x, name="bn1"), "relu", inplace=True, name="relu")
    x = net.maxpool(x, 3, stride=2, padding=1, name="maxpool")
    inplanes = 64
    for k, (planes, blocks, stride) in enumerate(zip((64, 128, 256, 512), layers, (1, 2, 2, 2))):
        downsample = stride != 1 or inplanes != planes * expansion
        x = block(net, x, planes, stride, downsample, f"layer{k + 1}.0.")
        inplanes = planes * expansion
        for i in range(1, blocks):
            x = block(net, x, planes, 1, False, f"layer{k + 1}.{i}.")
    x = net.call("method", "flatten", net.global_avgpool(x, name="avgpool"))
    net.linear(x, num_classes, name="fc")
    return net


@_model
def resnet18(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """ResNet-18 (torchvision ``resnet18``)."""
    return _resnet(False, (2, 2, 2, 2), num_classes, resolution)


@_model
def resnet34(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """ResNet-34 (torchvision ``resnet34``)."""
    return _resnet(False, (3, 4, 6, 3), num_classes, resolution)


@_model
def resnet50(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """ResNet-50 V1.5 (torchvision ``resnet50``).

    >>> import nasflops
    >>> int(nasflops.score(resnet50())["params"][0])
    25557032
    """
    return _resnet(True, (3, 4, 6, 3), num_classes, resolution)


@_model
def resnet101(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """ResNet-101 V1.5 (torchvision ``resnet101``)."""
    return _resnet(True, (3, 4, 23, 3), num_classes, resolution)


@_model
def resnet152(num_classes: int = 1000, resolution: int = 224) -> _Net:
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


def _vgg(cfg: str, num_classes: int, resolution: int) -> _Net:
    net = _new(resolution)
    x, f, c = net.input, _Seq("features"), _Seq("classifier")
    for v in _VGG_CFGS[cfg]:
        if v == "M":
            x = net.maxpool(x, 2, stride=2, name=f())
        else:
            x = net.conv(x, v, 3, padding=1, bias=True, name=f())
            x = net.act(x, "relu", inplace=True, name=f())
    x = net.call("method", "flatten", net.adaptive_avgpool(x, 7, name="avgpool"))
    x = net.act(net.linear(x, 4096, name=c()), "relu", inplace=True, name=c())
    x = net.act(net.linear(net.dropout(x, name=c()), 4096, name=c()), "relu", inplace=True, name=c())
    net.linear(net.dropout(x, name=c()), num_classes, name=c())
    return net


@_model
def vgg11(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """VGG-11 without batch norm (torchvision ``vgg11``)."""
    return _vgg("A", num_classes, resolution)


@_model
def vgg16(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """VGG-16 without batch norm (torchvision ``vgg16``)."""
    return _vgg("D", num_classes, resolution)


@_model
def vgg19(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """VGG-19 without batch norm (torchvision ``vgg19``)."""
    return _vgg("E", num_classes, resolution)


@_model
def alexnet(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """AlexNet, "one weird trick" variant (torchvision ``alexnet``)."""
    net = _new(resolution)
    x, f, c = net.input, _Seq("features"), _Seq("classifier")
    for out, k, s, p, pool in ((64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False),
                               (256, 3, 1, 1, False), (256, 3, 1, 1, True)):
        x = net.conv(x, out, k, stride=s, padding=p, bias=True, name=f())
        x = net.act(x, "relu", inplace=True, name=f())
        if pool:
            x = net.maxpool(x, 3, stride=2, name=f())
    x = net.call("method", "flatten", net.adaptive_avgpool(x, 6, name="avgpool"))
    x = net.act(net.linear(net.dropout(x, name=c()), 4096, name=c()), "relu", inplace=True, name=c())
    x = net.act(net.linear(net.dropout(x, name=c()), 4096, name=c()), "relu", inplace=True, name=c())
    net.linear(x, num_classes, name=c())
    return net


# ---------------------------------------------------------------------------
# MobileNetV2 (mobilenetv2.py), MobileNetV3 (mobilenetv3.py)
# ---------------------------------------------------------------------------
@_model
def mobilenet_v2(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """MobileNetV2, width 1.0 (torchvision ``mobilenet_v2``)."""
    net = _new(resolution)
    setting = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    inp = make_divisible(32, 8)
    last = make_divisible(1280, 8)
    f = _Seq("features")
    x = net.conv_norm_act(net.input, inp, 3, stride=2, act="relu6", name=f())
    for t, c, n, s in setting:
        oup = make_divisible(c, 8)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = int(round(inp * t))
            y, b = x, _Seq(f() + ".conv")
            if t != 1:
                y = net.conv_norm_act(y, hidden, 1, act="relu6", name=b())
            y = net.conv_norm_act(y, hidden, 3, stride=stride, groups=hidden, act="relu6", name=b())
            y = net.bn(net.conv(y, oup, 1, name=b()), name=b())
            # ``x + self.conv(x)``: a new tensor, not in place
            x = net.call("operator", "add", x, y) if stride == 1 and inp == oup else y
            inp = oup
    x = net.conv_norm_act(x, last, 1, act="relu6", name=f())
    x = net.call("function", "global_avgpool", x)    # nn.functional.adaptive_avg_pool2d
    x = net.call("method", "flatten", x)
    c = _Seq("classifier")
    net.linear(net.dropout(x, name=c()), num_classes, name=c())
    return net


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


def _mobilenet_v3(setting, last_channel: int, num_classes: int, resolution: int) -> _Net:
    net = _new(resolution)
    f = _Seq("features")
    x = net.conv_norm_act(net.input, _adjust(setting[0][0]), 3, stride=2, act="hardswish", name=f())
    for cin, k, exp, cout, use_se, a, stride in setting:
        cin, exp, cout = _adjust(cin), _adjust(exp), _adjust(cout)
        act = "hardswish" if a == "HS" else "relu"
        y, b = x, _Seq(f() + ".block")
        if exp != cin:
            y = net.conv_norm_act(y, exp, 1, act=act, name=b())
        y = net.conv_norm_act(y, exp, k, stride=stride, groups=exp, act=act, name=b())
        if use_se:
            y = net.squeeze_excitation(y, make_divisible(exp // 4, 8), act="relu",
                                       gate="hardsigmoid", name=b())
        y = net.conv_norm_act(y, cout, 1, act=None, name=b())
        if stride == 1 and cin == cout:     # result += input
            y = net.call("operator", "add", y, x, inplace=True)
        x = y
    x = net.conv_norm_act(x, 6 * _adjust(setting[-1][3]), 1, act="hardswish", name=f())
    x = net.call("method", "flatten", net.global_avgpool(x, name="avgpool"))
    c = _Seq("classifier")
    x = net.act(net.linear(x, _adjust(last_channel), name=c()), "hardswish", inplace=True, name=c())
    net.linear(net.dropout(x, name=c()), num_classes, name=c())
    return net


@_model
def mobilenet_v3_large(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """MobileNetV3-Large (torchvision ``mobilenet_v3_large``)."""
    return _mobilenet_v3(_MBV3_LARGE, 1280, num_classes, resolution)


@_model
def mobilenet_v3_small(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """MobileNetV3-Small (torchvision ``mobilenet_v3_small``)."""
    return _mobilenet_v3(_MBV3_SMALL, 1024, num_classes, resolution)


# ---------------------------------------------------------------------------
# EfficientNet-B0 (efficientnet.py)
# ---------------------------------------------------------------------------
def _mbconv(net: _Net, x: int, cin: int, cout: int, t: int, k: int, stride: int, p: str) -> int:
    """One ``MBConv`` at ``p``: ``block`` (a Sequential), then ``stochastic_depth``
    and ``result += input`` when the block is residual."""
    exp = make_divisible(cin * t, 8)
    y, b = x, _Seq(p + ".block")
    if exp != cin:
        y = net.conv_norm_act(y, exp, 1, act="silu", name=b())
    y = net.conv_norm_act(y, exp, k, stride=stride, groups=exp, act="silu", name=b())
    # SE with ``partial(nn.SiLU, inplace=True)`` and a sigmoid gate
    y = net.squeeze_excitation(y, max(1, cin // 4), act="silu", act_inplace=True,
                               gate="sigmoid", name=b())
    y = net.conv_norm_act(y, cout, 1, act=None, name=b())
    net.declare(p + ".stochastic_depth")    # registered after block; called when residual
    if stride == 1 and cin == cout:
        y = net.identity(y, name=p + ".stochastic_depth")
        y = net.call("operator", "add", y, x, inplace=True)
    return y


@_model
def efficientnet_b0(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """EfficientNet-B0 (torchvision ``efficientnet_b0``; width and depth 1.0)."""
    net = _new(resolution)
    # expand_ratio, kernel, stride, in, out, layers
    setting = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2),
               (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
               (6, 3, 1, 192, 320, 1)]
    f = _Seq("features")
    x = net.conv_norm_act(net.input, _adjust(setting[0][3]), 3, stride=2, act="silu", name=f())
    for t, k, s, cin0, cout, n in setting:
        cout, stage = _adjust(cout), f()
        for i in range(int(math.ceil(n * 1.0))):
            cin, stride = (_adjust(cin0), s) if i == 0 else (cout, 1)
            x = _mbconv(net, x, cin, cout, t, k, stride, f"{stage}.{i}")
    x = net.conv_norm_act(x, 4 * _adjust(setting[-1][4]), 1, act="silu", name=f())
    x = net.call("method", "flatten", net.global_avgpool(x, name="avgpool"))
    c = _Seq("classifier")
    net.linear(net.dropout(x, name=c()), num_classes, name=c())
    return net


# ---------------------------------------------------------------------------
# DenseNet-121 (densenet.py)
# ---------------------------------------------------------------------------
@_model
def densenet121(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """DenseNet-121 (torchvision ``densenet121``; growth 32, bn_size 4)."""
    growth, bn_size, block_config, num_features = 32, 4, (6, 12, 24, 16), 64
    net = _new(resolution)
    x = net.conv(net.input, num_features, 7, stride=2, padding=3, name="features.conv0")
    x = net.act(net.bn(x, name="features.norm0"), "relu", inplace=True, name="features.relu0")
    x = net.maxpool(x, 3, stride=2, padding=1, name="features.pool0")
    for i, num_layers in enumerate(block_config):
        features = [x]
        for j in range(num_layers):
            p = f"features.denseblock{i + 1}.denselayer{j + 1}."
            # bn_function: torch.cat(inputs, 1) -> norm1 -> relu1 -> conv1
            y = net.call("method", "concat", *features)
            y = net.act(net.bn(y, name=p + "norm1"), "relu", inplace=True, name=p + "relu1")
            y = net.conv(y, bn_size * growth, 1, name=p + "conv1")
            y = net.act(net.bn(y, name=p + "norm2"), "relu", inplace=True, name=p + "relu2")
            features.append(net.conv(y, growth, 3, padding=1, name=p + "conv2"))
        x = net.call("method", "concat", *features)
        num_features += num_layers * growth
        if i != len(block_config) - 1:
            p = f"features.transition{i + 1}."
            num_features //= 2
            x = net.act(net.bn(x, name=p + "norm"), "relu", inplace=True, name=p + "relu")
            x = net.conv(x, num_features, 1, name=p + "conv")
            x = net.avgpool(x, 2, stride=2, name=p + "pool")
    x = net.bn(x, name="features.norm5")
    x = net.call("function", "act", x, "relu", inplace=True)     # F.relu(features, inplace=True)
    x = net.call("function", "global_avgpool", x)               # F.adaptive_avg_pool2d
    x = net.call("method", "flatten", x)
    net.linear(x, num_classes, name="classifier")
    return net


# ---------------------------------------------------------------------------
# ShuffleNetV2 x1.0 (shufflenetv2.py)
# ---------------------------------------------------------------------------
def _shuffle_unit(net: _Net, x: int, inp: int, oup: int, stride: int, p: str) -> int:
    """One ``InvertedResidual`` at ``p``: ``branch1`` (empty and never called
    at stride 1), ``branch2``, ``torch.cat``, ``channel_shuffle``."""
    half = oup // 2
    b1, b2 = _Seq(p + "branch1"), _Seq(p + "branch2")
    if stride == 1:   # x1, x2 = x.chunk(2, dim=1)
        net.declare(p + "branch1")
        left = net.call("method", "slice", x, 0, half)
        src = net.call("method", "slice", x, half, half)
    else:             # both branches see the whole input
        left = net.conv(x, inp, 3, stride=2, padding=1, groups=inp, name=b1())
        left = net.conv(net.bn(left, name=b1()), half, 1, name=b1())
        left = net.act(net.bn(left, name=b1()), "relu", inplace=True, name=b1())
        src = x
    y = net.act(net.bn(net.conv(src, half, 1, name=b2()), name=b2()), "relu", inplace=True, name=b2())
    y = net.bn(net.conv(y, half, 3, stride=stride, padding=1, groups=half, name=b2()), name=b2())
    y = net.act(net.bn(net.conv(y, half, 1, name=b2()), name=b2()), "relu", inplace=True, name=b2())
    return net.call("function", "channel_shuffle", net.call("method", "concat", left, y), 2)


@_model
def shufflenet_v2_x1_0(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """ShuffleNetV2 1.0x (torchvision ``shufflenet_v2_x1_0``)."""
    repeats, channels = (4, 8, 4), (24, 116, 232, 464, 1024)
    net = _new(resolution)
    x = net.conv(net.input, channels[0], 3, stride=2, padding=1, name="conv1.0")
    x = net.act(net.bn(x, name="conv1.1"), "relu", inplace=True, name="conv1.2")
    x = net.maxpool(x, 3, stride=2, padding=1, name="maxpool")
    inp = channels[0]
    for k, (n, oup) in enumerate(zip(repeats, channels[1:4])):
        for i in range(n):
            x = _shuffle_unit(net, x, inp, oup, 2 if i == 0 else 1, f"stage{k + 2}.{i}.")
        inp = oup
    x = net.conv(x, channels[4], 1, name="conv5.0")
    x = net.act(net.bn(x, name="conv5.1"), "relu", inplace=True, name="conv5.2")
    x = net.call("method", "mean", x, height=True, width=True)  # x.mean([2, 3])
    net.linear(x, num_classes, name="fc")
    return net


# ---------------------------------------------------------------------------
# SqueezeNet 1.0 (squeezenet.py)
# ---------------------------------------------------------------------------
def _fire(net: _Net, x: int, squeeze: int, e1: int, e3: int, p: str) -> int:
    x = net.conv(x, squeeze, 1, bias=True, name=p + "squeeze")
    x = net.act(x, "relu", inplace=True, name=p + "squeeze_activation")
    a = net.conv(x, e1, 1, bias=True, name=p + "expand1x1")
    a = net.act(a, "relu", inplace=True, name=p + "expand1x1_activation")
    b = net.conv(x, e3, 3, padding=1, bias=True, name=p + "expand3x3")
    b = net.act(b, "relu", inplace=True, name=p + "expand3x3_activation")
    return net.call("method", "concat", a, b)


@_model
def squeezenet1_0(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """SqueezeNet 1.0 (torchvision ``squeezenet1_0``)."""
    net = _new(resolution)
    f = _Seq("features")
    x = net.conv(net.input, 96, 7, stride=2, bias=True, name=f())
    x = net.act(x, "relu", inplace=True, name=f())
    for item in ("M", (16, 64), (16, 64), (32, 128), "M", (32, 128), (48, 192), (48, 192),
                 (64, 256), "M", (64, 256)):
        if item == "M":
            x = net.maxpool(x, 3, stride=2, ceil_mode=True, name=f())
        else:
            x = _fire(net, x, item[0], item[1], item[1], f() + ".")
    c = _Seq("classifier")
    x = net.conv(net.dropout(x, name=c()), num_classes, 1, bias=True, name=c())
    x = net.act(x, "relu", inplace=True, name=c())
    net.call("method", "flatten", net.global_avgpool(x, name=c()))
    return net


# ---------------------------------------------------------------------------
# GoogLeNet (googlenet.py)
# ---------------------------------------------------------------------------
def _basic_conv(net: _Net, x: int, out: int, kernel: int, stride: int = 1, padding: int = 0,
                name: str = "") -> int:
    # BasicConv2d: conv (no bias) -> BN(eps=1e-3) -> F.relu(inplace=True)
    x = net.conv(x, out, kernel, stride=stride, padding=padding, name=name + ".conv")
    return net.call("function", "act", net.bn(x, name=name + ".bn"), "relu", inplace=True)


def _inception(net: _Net, x: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pool: int,
               p: str) -> int:
    b1 = _basic_conv(net, x, c1, 1, name=p + ".branch1")
    b2 = _basic_conv(net, _basic_conv(net, x, c3r, 1, name=p + ".branch2.0"), c3, 3, padding=1,
                     name=p + ".branch2.1")
    # kernel 3 in the "5x5" branch is torchvision's known quirk (vision#906)
    b3 = _basic_conv(net, _basic_conv(net, x, c5r, 1, name=p + ".branch3.0"), c5, 3, padding=1,
                     name=p + ".branch3.1")
    b4 = net.maxpool(x, 3, stride=1, padding=1, ceil_mode=True, name=p + ".branch4.0")
    b4 = _basic_conv(net, b4, pool, 1, name=p + ".branch4.1")
    return net.call("method", "concat", b1, b2, b3, b4)


@_model
def googlenet(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """GoogLeNet / Inception v1 as torchvision's pretrained model (no aux heads).

    ``transform_input`` is not represented (see the module docstring).
    """
    net = _new(resolution)
    x = _basic_conv(net, net.input, 64, 7, stride=2, padding=3, name="conv1")
    x = net.maxpool(x, 3, stride=2, ceil_mode=True, name="maxpool1")
    x = _basic_conv(net, x, 64, 1, name="conv2")
    x = _basic_conv(net, x, 192, 3, padding=1, name="conv3")
    x = net.maxpool(x, 3, stride=2, ceil_mode=True, name="maxpool2")
    x = _inception(net, x, 64, 96, 128, 16, 32, 32, "inception3a")
    x = _inception(net, x, 128, 128, 192, 32, 96, 64, "inception3b")
    x = net.maxpool(x, 3, stride=2, ceil_mode=True, name="maxpool3")
    x = _inception(net, x, 192, 96, 208, 16, 48, 64, "inception4a")
    x = _inception(net, x, 160, 112, 224, 24, 64, 64, "inception4b")
    x = _inception(net, x, 128, 128, 256, 24, 64, 64, "inception4c")
    x = _inception(net, x, 112, 144, 288, 32, 64, 64, "inception4d")
    x = _inception(net, x, 256, 160, 320, 32, 128, 128, "inception4e")
    x = net.maxpool(x, 2, stride=2, ceil_mode=True, name="maxpool4")
    x = _inception(net, x, 256, 160, 320, 32, 128, 128, "inception5a")
    x = _inception(net, x, 384, 192, 384, 48, 128, 128, "inception5b")
    x = net.call("method", "flatten", net.global_avgpool(x, name="avgpool"))
    net.linear(net.dropout(x, name="dropout"), num_classes, name="fc")
    return net


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


def _regnet_block(net: _Net, x: int, w_in: int, w_out: int, stride: int, group_width: int,
                  p: str) -> int:
    """``ResBottleneckBlock`` at ``p``: ``proj(x) + f(x)`` (proj evaluated first),
    then the in-place ``activation``."""
    skip = x
    if w_in != w_out or stride != 1:
        skip = net.conv_norm_act(x, w_out, 1, stride=stride, act=None, name=p + "proj")
    w_b = int(round(w_out * 1.0))           # bottleneck_multiplier 1.0
    y = net.conv_norm_act(x, w_b, 1, name=p + "f.a")
    y = net.conv_norm_act(y, w_b, 3, stride=stride, groups=w_b // group_width, name=p + "f.b")
    y = net.squeeze_excitation(y, int(round(0.25 * w_in)), act="relu", gate="sigmoid",
                               name=p + "f.se")
    y = net.conv_norm_act(y, w_out, 1, act=None, name=p + "f.c")
    x = net.call("operator", "add", skip, y)
    return net.act(x, "relu", inplace=True, name=p + "activation")


@_model
def regnet_y_400mf(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """RegNetY-400MF (torchvision ``regnet_y_400mf``)."""
    stages = _regnet_block_params(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8)
    net = _new(resolution)
    x = net.conv_norm_act(net.input, 32, 3, stride=2, name="stem")  # SimpleStemIN
    width_in = 32
    for k, (width_out, depth, group_width) in enumerate(stages):
        for i in range(depth):
            p = f"trunk_output.block{k + 1}.block{k + 1}-{i}."
            x = _regnet_block(net, x, width_in if i == 0 else width_out, width_out,
                              2 if i == 0 else 1, group_width, p)
        width_in = width_out
    x = net.call("method", "flatten", net.global_avgpool(x, name="avgpool"))  # x.flatten(1)
    net.linear(x, num_classes, name="fc")
    return net


# ---------------------------------------------------------------------------
# ConvNeXt-Tiny (convnext.py)
# ---------------------------------------------------------------------------
def _cn_block(net: _Net, x: int, dim: int, p: str) -> int:
    """``CNBlock`` at ``p``: ``block`` (dwconv, Permute, LayerNorm, Linear, GELU,
    Linear, Permute), ``layer_scale * ...``, ``stochastic_depth``, ``+= input``."""
    y = net.conv(x, dim, 7, padding=3, groups=dim, bias=True, name=p + "block.0")
    y = net.layernorm(y, name=p + "block.2")
    y = net.conv(y, 4 * dim, 1, bias=True, name=p + "block.3")       # Linear(dim, 4 dim)
    y = net.act(y, "gelu", name=p + "block.4")
    y = net.conv(y, dim, 1, bias=True, name=p + "block.5")           # Linear(4 dim, dim)
    y = net.call("operator", "scale", y)                               # layer_scale * ...
    y = net.identity(y, name=p + "stochastic_depth")
    return net.call("operator", "add", y, x, inplace=True)            # result += input


@_model
def convnext_tiny(num_classes: int = 1000, resolution: int = 224) -> _Net:
    """ConvNeXt-Tiny (torchvision ``convnext_tiny``); mappings in the module docstring."""
    stages = [(96, 192, 3), (192, 384, 3), (384, 768, 9), (768, None, 3)]
    net = _new(resolution)
    f = _Seq("features")
    # stem: Conv2dNormActivation(3, 96, k=4, s=4, p=0, LayerNorm2d, no act, bias)
    p = f()
    x = net.conv(net.input, stages[0][0], 4, stride=4, bias=True, name=p + ".0")
    x = net.call("function", "layernorm", x)     # LayerNorm2d: F.layer_norm, permuted
    for dim, out, n in stages:
        stage = f()
        for i in range(n):
            x = _cn_block(net, x, dim, f"{stage}.{i}.")
        if out is not None:
            p = f()
            x = net.conv(net.call("function", "layernorm", x), out, 2, stride=2, bias=True,
                         name=p + ".1")
    x = net.global_avgpool(x, name="avgpool")
    x = net.flatten(net.call("function", "layernorm", x), name="classifier.1")   # nn.Flatten(1)
    net.linear(x, num_classes, name="classifier.2")
    return net


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
# the vision transformers (ViT, DeiT, Swin, MaxViT) live in their own module
MODELS.update(vision_transformers.MODELS)
_NETS.update(vision_transformers.NETS)
#: other names of zoo models (the same records)
ALIASES: dict[str, str] = dict(vision_transformers.ALIASES)
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
    **vision_transformers.PUBLISHED,
}


@functools.lru_cache(maxsize=64)
def _cached(name: str, resolution: int, num_classes: int) -> tuple:
    """``(records, names, modules)`` of a model, records read-only."""
    if name not in MODELS:
        raise ValueError(f"unknown zoo model {name!r}; known: {', '.join(MODEL_NAMES)}")
    net = _NETS[name](num_classes, resolution)
    rec = net.records
    rec.setflags(write=False)
    return rec, tuple(net.names), tuple(net.modules)


def build(name: str, resolution: int = 224, num_classes: int = 1000, with_names: bool = False):
    """Records of zoo model ``name`` (cached; a writable copy is returned).

    With ``with_names=True``, ``(records, names)``: one name per record, the
    path of the torchvision module that makes it (``""`` for the input and
    for function, method and operator calls).

    >>> import nasflops
    >>> int(nasflops.score(build("alexnet"))["params"][0])
    61100840
    >>> rec, names = build("vgg16", with_names=True)
    >>> names[-3:]
    ['classifier.4', 'classifier.5', 'classifier.6']
    """
    rec, names, _ = _cached(ALIASES.get(str(name), str(name)), int(resolution), int(num_classes))
    return (rec.copy(), list(names)) if with_names else rec.copy()


def modules(name: str, resolution: int = 224, num_classes: int = 1000) -> list[str]:
    """The named modules of zoo model ``name`` in torchvision's registration
    order (``model.named_modules()``, leaves only), including modules
    torchvision registers but never calls in eval mode.

    >>> modules("shufflenet_v2_x1_0")[:5]
    ['conv1.0', 'conv1.1', 'conv1.2', 'maxpool', 'stage2.0.branch1.0']
    """
    return list(_cached(ALIASES.get(str(name), str(name)), int(resolution), int(num_classes))[2])


def _models(positions: np.ndarray, resolution: int, num_classes: int) -> SpecBatch:
    """The zoo models at ``positions`` (each built once per resolution: a
    model that cannot take this resolution fails only when asked for)."""
    uniq, inverse = np.unique(positions, return_inverse=True)
    built = SpecBatch.from_list([_cached(MODEL_NAMES[p], resolution, num_classes)[0] for p in uniq])
    return built.take(inverse)


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
    29
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
        return _models(self._indices(cols), self.resolution, self.num_classes)

    def decode(self, batch: SpecBatch) -> dict[str, np.ndarray]:
        """Model names of records this space encoded (a candidate equals one model's records)."""
        names = np.empty(len(batch), dtype=self._names.dtype)
        found = np.zeros(len(batch), dtype=bool)
        lengths = batch.lengths
        for m, name in enumerate(MODEL_NAMES):   # 19 models, each compared to same-length rows
            try:
                ref = _cached(name, self.resolution, self.num_classes)[0]
            except ValueError:        # a model this resolution does not fit
                continue
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
        natives = [ALIASES.get(v, v) for v in natives]
        cols = {"model": np.array(natives, dtype=str) if natives else np.array([], dtype="<U1")}
        self._indices(cols)
        return cols

    def from_columns(self, cols: Mapping[str, np.ndarray]) -> list:
        return [str(v) for v in np.asarray(cols["model"]).tolist()]

    def arrow_columns(self, cols: Mapping[str, np.ndarray]) -> dict:
        import pyarrow as pa
        return {"model": pa.array(np.asarray(cols["model"]).astype(str), type=pa.string())}
