"""Block writers: the records of each block type, written once per template.

Each writer appends one block's layers to a :class:`~nasflops.Net` in the
order torch runs them, and tracks the spatial size per resolution (an
array) for the records patched per candidate.  The topologies are stated in
``docs/declarative.md``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from nasflops.spec import Net
from ..base import make_divisible

__all__ = ["BlockWriter", "out_size"]


def out_size(h: np.ndarray, k: int, s: int, p: int) -> np.ndarray:
    return (h + 2 * p - k) // s + 1


class BlockWriter:
    """Writes layers and blocks into a :class:`Net`, tracking the spatial size
    per resolution (an array) for the records patched per candidate."""

    def __init__(self, opts: dict):
        self.opts = opts

    def act(self, net: Net, x: int, kind: Optional[str]) -> int:
        if kind is None:
            return x
        return net.act(x, kind, inplace=kind in self.opts["inplace"])

    def global_pool(self, net: Net, x: int, h: np.ndarray, patches: list) -> int:
        if self.opts["global_pool"] == "mean_wh":
            # x.mean(3, keepdim=True).mean(2, keepdim=True): the first pool's
            # height is the input's, filled per candidate from ``h``
            first = net.adaptive_avgpool(x, (0, 1))
            patches.append((first, h))
            return net.adaptive_avgpool(first, 1)
        return net.global_avgpool(x)

    def conv(self, net, x, cout, k, s=1, groups=1, bias=False, bn=True, act=None, padding=None):
        x = net.conv(x, cout, k, stride=s, padding=k // 2 if padding is None else padding,
                     groups=groups, bias=bias)
        if bn:
            x = net.bn(x)
        return self.act(net, x, act)

    def mbconv(self, net, x, cin, cout, k, s, e, act, se, residual, divisor, h, patches):
        inp = x
        if e == 1:
            mid = cin
        else:
            mid = int(round(cin * e))
            if divisor:
                mid = make_divisible(mid, divisor)
            x = self.conv(net, x, mid, 1, act=act)
        x = self.conv(net, x, mid, k, s, groups=mid, act=act)
        h = out_size(h, k, s, k // 2)
        if se:
            se_mid = make_divisible(mid // se["reduction"], se["divisor"])
            y = self.global_pool(net, x, h, patches)
            y = net.conv(y, se_mid, 1, bias=True)
            y = self.act(net, y, se["act"])
            y = net.conv(y, mid, 1, bias=True)
            y = self.act(net, y, se["gate"])
            x = net.mul(x, y)
        x = self.conv(net, x, cout, 1)
        if residual and s == 1 and cin == cout:
            x = net.add(x, inp)
        return x, h

    def _shortcut_add(self, net, x, inp, cin, cout, s, act):
        if s != 1 or cin != cout:
            inp = self.conv(net, inp, cout, 1, s, padding=0)
        return self.act(net, net.add(x, inp), act)

    def resnet_basic(self, net, x, cin, cout, k, s, act, h):
        inp = x
        x = self.conv(net, x, cout, k, s, act=act)
        x = self.conv(net, x, cout, k)
        return self._shortcut_add(net, x, inp, cin, cout, s, act), out_size(h, k, s, k // 2)

    def resnet_bottleneck(self, net, x, cin, cout, k, s, e, act, divisor, h):
        inp = x
        mid = int(round(cout * e))
        if divisor:
            mid = make_divisible(mid, divisor)
        x = self.conv(net, x, mid, 1, act=act)
        x = self.conv(net, x, mid, k, s, act=act)
        x = self.conv(net, x, cout, 1)
        return self._shortcut_add(net, x, inp, cin, cout, s, act), out_size(h, k, s, k // 2)

    def block(self, net, x, typ, cin, cout, k, s, e, st, h, patches):
        """One stage block (``st``: the stage's normalized spec)."""
        if typ == "conv":
            x = self.conv(net, x, cout, k, s, bias=st["bias"], bn=st["bn"], act=st["act"])
            return x, out_size(h, k, s, k // 2)
        if typ == "mbconv":
            return self.mbconv(net, x, cin, cout, k, s, e, st["act"], st["se"], st["residual"],
                               st["divisor"], h, patches)
        if typ == "resnet_basic":
            return self.resnet_basic(net, x, cin, cout, k, s, st["act"], h)
        if typ == "resnet_bottleneck":
            return self.resnet_bottleneck(net, x, cin, cout, k, s, e, st["act"], st["divisor"], h)
        raise AssertionError(typ)

    def fixed(self, net, x, spec, cin, h, patches):
        """One stem/head layer; returns (output, channels, spatial size)."""
        t = spec["type"]
        if t in ("mbconv", "resnet_basic", "resnet_bottleneck"):
            st = {"act": spec["act"], "se": spec.get("se"), "residual": spec.get("residual", True),
                  "divisor": spec.get("divisor")}
            x, h = self.block(net, x, t, cin, spec["out"], spec["kernel"], spec["stride"],
                              spec.get("expand", 1), st, h, patches)
            return x, spec["out"], h
        if t == "conv":
            g = cin if spec["groups"] == "depthwise" else spec["groups"]
            x = self.conv(net, x, spec["out"], spec["kernel"], spec["stride"], g, spec["bias"],
                          spec["bn"], spec["act"], spec["padding"])
            return x, spec["out"], out_size(h, spec["kernel"], spec["stride"], spec["padding"])
        if t in ("maxpool", "avgpool"):
            f = net.maxpool if t == "maxpool" else net.avgpool
            x = f(x, spec["kernel"], spec["stride"], spec["padding"])
            return x, cin, out_size(h, spec["kernel"], spec["stride"], spec["padding"])
        if t == "global_pool":
            return self.global_pool(net, x, h, patches), cin, np.ones_like(h)
        if t == "flatten":
            return net.flatten(x), cin, h
        if t == "dropout":
            return net.dropout(x), cin, h
        if t == "linear":
            return net.linear(x, spec["out"], bias=spec["bias"]), spec["out"], h
        raise AssertionError(t)
