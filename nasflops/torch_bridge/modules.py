"""nasflops' own ``nn.Module`` s: the tiny modules ``to_torch`` builds for ops
torch has no module for, and the wrappers that spell an op as a function, a
tensor method or an operator.

Two families:

* **bridge modules** (:data:`BRIDGE_MODULES`: :class:`Add`, :class:`Mul`,
  :class:`Concat`, :class:`Slice`, :class:`Zero`, :class:`Scale`,
  :class:`LayerNorm2d`, :class:`InplaceAct`, ...) stand for one record called
  as a module.  ``from_torch`` reads them as one op without looking inside.
* **spellings** (:class:`Fn`, :class:`ConvF`, :class:`LinearF`,
  :class:`BatchNormF`, :class:`LayerNormF`, :class:`ScaleF`) call a torch
  function, tensor method or operator in their ``forward``; ``from_torch``
  traces into them like into any user module, so a record written with call
  kind ``function`` comes back as one.

No module here has a type the reference tools (thop, ptflops) key a rule on:
what they see is what ``forward`` calls.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Add", "InplaceAdd", "Mul", "Concat", "Slice", "Zero", "Scale", "LayerNorm2d",
           "InplaceAct", "Fused", "BRIDGE_MODULES", "Fn", "Written", "ConvF", "LinearF",
           "BatchNormF", "LayerNormF", "ScaleF", "resolve", "Tokens", "ToImage", "Prepend",
           "ParamAdd", "ViewAs", "Attention", "SelfAttention", "PatchMerge", "TokenEmbedding",
           "RMSNorm", "Rotary", "KVCache", "ExpertLinear", "MoECombine", "expert_of",
           "TRANSFORMER_MODULES"]


# ------------------------------------------------------------ bridge modules
class Add(nn.Module):
    """Element-wise sum of two or more same-shape tensors (``a + b + ...``)."""

    def forward(self, x, *others):
        for o in others:
            x = x + o
        return x


class InplaceAdd(nn.Module):
    """In-place sum into the first input (torch's ``out += identity``)."""

    def forward(self, x, *others):
        for o in others:
            x += o
        return x


class Fused(nn.Module):
    """Stands for a record folded into a later one (the head of a concat chain,
    which one ``torch.cat`` computes); never called."""

    def forward(self, *xs):  # pragma: no cover - never called
        raise RuntimeError("a fused record is computed by the record that consumes it")


class Mul(nn.Module):
    """Element-wise product; the gate broadcasts (an SE gate ``N x C x 1 x 1``)."""

    def forward(self, x, gate):
        return x * gate


class Concat(nn.Module):
    """Concatenation along one axis (``torch.cat(xs, dim=1)`` by default)."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = int(dim)

    def forward(self, *xs):
        return torch.cat(xs, dim=self.dim)


class Slice(nn.Module):
    """Channels ``start .. start + count`` of the input (a view, like ``chunk``)."""

    def __init__(self, start: int, count: int):
        super().__init__()
        self.start, self.count = int(start), int(count)

    def forward(self, x):
        return x.narrow(1, self.start, self.count)

    def extra_repr(self):
        return f"start={self.start}, count={self.count}"


class Zero(nn.Module):
    """NAS-Bench "none": zeros shaped like the input (a new tensor)."""

    def forward(self, x):
        return torch.zeros_like(x)


class Scale(nn.Module):
    """Learned per-channel scale (ConvNeXt's layer scale), optional shift.

    Parameters: ``C`` weights, plus ``C`` biases with ``bias=True``.
    """

    def __init__(self, channels: int, bias: bool = False, rank: int = 4):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        # the parameter's broadcast shape is fixed at build time (channels
        # last in a token tensor, rank 5)
        self.shape = _channel_shape(channels, rank)

    def forward(self, x):
        y = x * self.weight.view(self.shape)
        if self.bias is not None:
            y = y + self.bias.view(self.shape)
        return y


def _channel_shape(channels: int, rank: int) -> tuple:
    """Broadcast shape of a per-channel parameter at an input of ``rank``
    (5: a token tensor, channels last)."""
    if rank == 5:
        return (1, 1, 1, 1, channels)
    return (1, channels) + (1,) * (rank - 2)


class LayerNorm2d(nn.Module):
    """Layer norm over the channels at each position (ConvNeXt's LayerNorm2d).

    Holds a plain ``nn.LayerNorm`` child, applied channels-last, so tools that
    key on the ``nn.LayerNorm`` type see it.
    """

    def __init__(self, channels: int, affine: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(channels, elementwise_affine=affine)

    def forward(self, x):
        # contiguous: the next op sees an N x C x H x W tensor, as the record
        # says (a flatten of it is a view)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()


class InplaceAct(nn.Module):
    """In-place sigmoid, tanh or GELU, which ``torch.nn`` has no in-place flag for.

    The activation is a plain ``nn.Sigmoid``/``nn.Tanh``/``nn.GELU`` child whose
    result is written back into the input, so tools keyed on those module
    types count it exactly as they count the out-of-place activation.
    """

    def __init__(self, kind: str):
        super().__init__()
        fns = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU}
        if kind not in fns:
            raise ValueError(f"InplaceAct handles sigmoid, tanh and gelu, got {kind!r}")
        self.kind = kind
        self.fn = fns[kind]()

    def forward(self, x):
        return x.copy_(self.fn(x))

    def extra_repr(self):
        return self.kind


#: nasflops' own modules, each one record (leaves for from_torch)
BRIDGE_MODULES = (Add, InplaceAdd, Mul, Concat, Slice, Zero, Scale, LayerNorm2d, InplaceAct)


# ----------------------------------------------------------------- spellings
def resolve(path: str, x=None):
    """The callable a spelling names, looked up *now* (tools such as ptflops
    patch ``F.relu`` and ``torch.add`` while they run): ``"F.relu"``,
    ``"torch.add"``, ``"torch._C._nn.relu6"``, or ``".mul"``, the method of ``x``.

    >>> import torch
    >>> resolve("torch.cat") is torch.cat
    True
    """
    if path.startswith("."):
        return getattr(x, path[1:])
    head, name = path.rsplit(".", 1)
    base = {"F": F, "torch": torch, "torch._C._nn": torch._C._nn}[head]
    return getattr(base, name)


class Fn(nn.Module):
    """An op spelled as a torch function, a tensor method or an operator:
    ``forward(x, *others)`` calls ``fn`` on them, then ``*args, **kwargs``.

    ``fn`` is a spelling path (:func:`resolve`: ``"F.relu"``, ``"torch.add"``,
    ``".mul"`` for ``x.mul(...)``) or a callable (``operator.add``);
    ``packed=True`` passes the inputs as one list (``torch.cat``).

    >>> import operator, torch
    >>> Fn(operator.add)(torch.ones(1), torch.ones(1)).item()
    2.0
    >>> Fn(".mul", 0.5)(torch.ones(1)).item()
    0.5
    """

    def __init__(self, fn, *args, packed: bool = False, **kwargs):
        super().__init__()
        self.fn, self.args, self.kwargs, self.packed = fn, args, kwargs, packed

    def forward(self, x, *others):
        if self.packed:
            return resolve(self.fn)([x, *others], *self.args, **self.kwargs)
        if not isinstance(self.fn, str):
            return self.fn(x, *others, *self.args, **self.kwargs)
        if self.fn.startswith("."):
            return resolve(self.fn, x)(*others, *self.args, **self.kwargs)
        return resolve(self.fn)(x, *others, *self.args, **self.kwargs)

    def extra_repr(self):
        return self.fn if isinstance(self.fn, str) else getattr(self.fn, "__name__", "")


class Written(nn.Module):
    """An activation written out with arithmetic, as model code does:
    ``hardsigmoid``: ``F.relu6(x + 3.) / 6.`` (``clamp=True``:
    ``torch.clamp(x + 3., 0., 6.) / 6.``), ``hardswish``: ``x * F.relu6(x + 3.) / 6.``,
    ``silu``: ``x * torch.sigmoid(x)``; ``inplace=True`` writes into ``x``."""

    def __init__(self, kind: str, clamp: bool = False, inplace: bool = False):
        super().__init__()
        self.kind, self.clamp, self.inplace = kind, clamp, inplace

    def _relu6(self, t, inplace=False):
        if self.clamp:
            return t.clamp_(0., 6.) if inplace else torch.clamp(t, 0., 6.)
        return F.relu6(t, inplace=inplace)

    def forward(self, x):
        if self.kind == "silu":
            s = torch.sigmoid(x)
            return x.mul_(s) if self.inplace else x * s
        if self.kind == "hardsigmoid":
            if self.inplace:
                return self._relu6(x.add_(3.), inplace=True).div_(6.)
            return self._relu6(x + 3.) / 6.
        r = self._relu6(x + 3.)
        if self.inplace:
            return x.mul_(r).div_(6.)
        return x * r / 6.

    def extra_repr(self):
        return self.kind


class ConvF(nn.Module):
    """A convolution spelled ``F.conv2d(x, self.weight, self.bias, ...)``."""

    def __init__(self, cin: int, cout: int, kernel, stride, padding, dilation, groups: int,
                 bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cout, cin // groups, *kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.geometry = (stride, padding, dilation, groups)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, *self.geometry)


class LinearF(nn.Module):
    """A fully connected layer spelled ``F.linear(x, self.weight, self.bias)``."""

    def __init__(self, cin: int, cout: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class BatchNormF(nn.Module):
    """Inference batch norm spelled ``F.batch_norm(x, mean, var, w, b, False)``."""

    def __init__(self, channels: int, affine: bool):
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False)


class LayerNormF(nn.Module):
    """Layer norm over the channels spelled ``F.layer_norm`` (channels-last
    between two permutes on ``N x C x H x W``, torchvision's LayerNorm2d).

    Its output is a channels-last view, as torchvision's: a flatten of it (or
    of what an element-wise op makes of it) copies."""

    def __init__(self, channels: int, affine: bool, rank: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None
        self.rank, self.shape = rank, (channels,)

    def forward(self, x):
        if self.rank in (2, 5):          # features or channels last
            return F.layer_norm(x, self.shape, self.weight, self.bias)
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.shape, self.weight, self.bias)
        return y.permute(0, 3, 1, 2)


class ScaleF(nn.Module):
    """A per-channel scale spelled ``x.mul(w)`` (``.add(b)``) (``method=True``)
    or ``x * w`` (``+ b``)."""

    def __init__(self, channels: int, bias: bool, rank: int, method: bool):
        super().__init__()
        # the input's rank: ptflops aligns the shapes of torch.mul / torch.add
        # from the left, so a (C, 1, 1) weight would be counted C times over
        shape = _channel_shape(channels, rank)
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape)) if bias else None
        self.method = method

    def forward(self, x):
        if self.method:
            y = x.mul(self.weight)
            return y if self.bias is None else y.add(self.bias)
        y = x * self.weight
        return y if self.bias is None else y + self.bias


# ------------------------------------------- token tensors, attention, LMs
# Tensor shapes in a built model: an image is ``N x C x H x W`` (``N x F``
# after a flatten); a token tensor of ``G`` groups of an ``H x W`` grid is
# ``N x G x H x W x C`` (channels last: a sequence is ``N x 1 x L x 1 x C``);
# a stack of ``G`` matrices is ``N x G x H x W``.  Every module below takes
# and returns those shapes.  The ones listed in :data:`TRANSFORMER_MODULES`
# are leaves for the recorder (``count_with_hooks`` counts each from its
# real tensors and its own attributes); the others are traced into.
class Tokens(nn.Module):
    """An image as tokens, a view: ``x.permute(0, 2, 3, 1)`` on the grid, or
    ``x.flatten(2).transpose(1, 2)`` as a sequence (``flat=True``)."""

    def __init__(self, flat: bool = False):
        super().__init__()
        self.flat = bool(flat)

    def forward(self, x):
        if self.flat:
            return x.flatten(2).transpose(1, 2).unsqueeze(1).unsqueeze(3)
        return x.permute(0, 2, 3, 1).unsqueeze(1)

    def extra_repr(self):
        return "flat" if self.flat else ""


class ToImage(nn.Module):
    """Tokens on one grid back to ``N x C x H x W`` (a view)."""

    def forward(self, x):
        return x.squeeze(1).permute(0, 3, 1, 2)


class Prepend(nn.Module):
    """``count`` learned tokens in front of a sequence (ViT's class token):
    ``torch.cat([self.token.expand(N, ...), x], dim=2)``."""

    def __init__(self, count: int, channels: int):
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, 1, count, 1, channels))

    def forward(self, x):
        return torch.cat([self.token.expand(x.shape[0], -1, -1, -1, -1), x], dim=2)


class ParamAdd(nn.Module):
    """``x + p`` (``x += p`` in place) for a learned tensor of ``params`` values
    broadcast to each sample's ``shape``: a position embedding when it holds one
    value per element, else a table gathered by an index buffer (Swin's
    relative-position bias: ``table[index]``); ``params=0`` adds a constant
    (an attention mask)."""

    def __init__(self, params: int, shape, inplace: bool = False):
        super().__init__()
        self.shape, self.inplace = tuple(int(v) for v in shape), bool(inplace)
        per = 1
        for v in self.shape:
            per *= v
        self.weight = nn.Parameter(torch.zeros(int(params))) if params else None
        if params and params != per:
            self.register_buffer("index", torch.zeros(self.shape, dtype=torch.long))
        else:
            self.index = None
        self.reset_buffers()

    def reset_buffers(self):
        """Fill the buffers (again: ``to_empty`` leaves them uninitialised)."""
        with torch.no_grad():
            if self.index is not None:
                n = self.index.numel()
                self.index.copy_((torch.arange(n, device=self.index.device)
                                  % self.weight.numel()).view(self.shape))

    def forward(self, x):
        if self.weight is None:
            b = x.new_zeros(self.shape)        # a constant (a shifted window's mask)
        elif self.index is None:
            b = self.weight.view(self.shape)
        else:
            b = self.weight[self.index]
        if self.inplace:
            x += b
            return x
        return x + b

    def extra_repr(self):
        return f"params={0 if self.weight is None else self.weight.numel()}, shape={self.shape}"


class ViewAs(nn.Module):
    """Each sample reshaped to ``shape`` (another layout); ``copy=True``: a new
    contiguous tensor, as ``.contiguous()`` or a reshape of a permuted tensor
    makes."""

    def __init__(self, shape, copy: bool = False):
        super().__init__()
        self.shape, self.copy = tuple(int(v) for v in shape), bool(copy)

    def forward(self, x):
        y = x.reshape((x.shape[0],) + self.shape)
        return y.clone(memory_format=torch.contiguous_format) if self.copy else y

    def extra_repr(self):
        return f"shape={self.shape}, copy={self.copy}"


class Attention(nn.Module):
    """Scaled dot-product attention of token tensors ``q, k, v`` (their
    projections are separate ``nn.Linear`` layers): heads split from the
    channels, ``kv_heads`` key/value heads shared by groups of query heads
    (GQA, MQA), ``F.scaled_dot_product_attention``; ``causal``: each query
    sees the keys at or before it, the queries being the last ``Lq`` of the
    ``Lk`` positions (a boolean mask when ``Lk > Lq``)."""

    def __init__(self, heads: int, kv_heads: int = 0, causal: bool = False,
                 lq: int = 0, lk: int = 0):
        super().__init__()
        self.heads = int(heads)
        self.kv_heads = int(kv_heads) or self.heads
        self.causal = bool(causal)
        self.lq, self.lk = int(lq), int(lk)
        # a causal mask torch's is_causal does not make (it aligns the first query with the
        # first key): made where the inputs are, when the module runs
        self.masked = self.causal and self.lq != self.lk

    def mask(self, device):
        """The boolean mask of a causal attention whose ``Lq`` queries are the
        last of its ``Lk`` positions (None when ``is_causal`` says it)."""
        if not self.masked:
            return None
        return torch.ones(self.lq, self.lk, dtype=torch.bool, device=device).tril(self.lk - self.lq)

    def _heads(self, t, h):
        n, g = t.shape[:2]
        return t.reshape(n * g, t.shape[2] * t.shape[3], h, -1).transpose(1, 2)

    def forward(self, q, k, v):
        n, g, a, b = q.shape[:4]
        o = F.scaled_dot_product_attention(
            self._heads(q, self.heads), self._heads(k, self.kv_heads),
            self._heads(v, self.kv_heads), attn_mask=self.mask(q.device),
            is_causal=self.causal and not self.masked, enable_gqa=self.heads != self.kv_heads)
        return o.transpose(1, 2).reshape(n, g, a, b, -1)

    def extra_repr(self):
        return f"heads={self.heads}, kv_heads={self.kv_heads}, causal={self.causal}"


class SelfAttention(nn.Module):
    """``nn.MultiheadAttention(embed_dim, heads, bias=bias, batch_first=True)`` as
    self-attention on every group of tokens (``attn(x, x, x,
    need_weights=False)[0]``, as torchvision's ViT calls it).  The tools hook the
    ``nn.MultiheadAttention`` child by its exact type."""

    def __init__(self, embed_dim: int, heads: int, bias: bool = True):
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dim, heads, bias=bias, batch_first=True)

    def forward(self, x):
        n, g, h, w, e = x.shape
        t = x.reshape(n * g, h * w, e)
        return self.attn(t, t, t, need_weights=False)[0].reshape(n, g, h, w, e)


class PatchMerge(nn.Module):
    """Swin's patch merging (``_patch_merging_pad``): odd sides zero-padded,
    the four pixels of each 2 x 2 neighbourhood concatenated along the channels."""

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        parts = [x[:, :, i::2, j::2] for j in (0, 1) for i in (0, 1)]
        return torch.cat(parts, dim=-1)


class TokenEmbedding(nn.Module):
    """Token ids to vectors: an ``nn.Embedding(vocab, dim)`` child looked up at
    the ids of an ``N x 1 x H x W`` input (a float input, such as the random
    one the tools pass, is turned into valid ids first)."""

    def __init__(self, vocab: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(int(vocab), int(dim))

    def forward(self, x):
        if x.is_floating_point():
            x = (x.detach().abs() * 997).long()
        ids = x.squeeze(1) % self.embed.num_embeddings
        return self.embed(ids).unsqueeze(1)


class RMSNorm(nn.Module):
    """Root-mean-square norm over the channels of a token tensor: an
    ``nn.RMSNorm(C)`` child (``affine``: its weight of C parameters)."""

    def __init__(self, channels: int, affine: bool = True):
        super().__init__()
        self.norm = nn.RMSNorm(int(channels), eps=1e-6, elementwise_affine=affine)

    def forward(self, x):
        return self.norm(x)


class Rotary(nn.Module):
    """Rotary position embedding of ``heads`` heads of a token tensor, token
    ``t`` at position ``t``: ``x * cos + rotate_half(x) * sin`` per head (the
    cos/sin tables are buffers)."""

    def __init__(self, heads: int, tokens: int, head_dim: int, base: float = 10000.0):
        super().__init__()
        self.heads, self.tokens, self.head_dim, self.base = (int(heads), int(tokens),
                                                             int(head_dim), float(base))
        self.register_buffer("cos", torch.zeros(self.tokens, 1, self.head_dim), persistent=False)
        self.register_buffer("sin", torch.zeros(self.tokens, 1, self.head_dim), persistent=False)
        self.reset_buffers()

    def _tables(self, device):
        d = self.head_dim
        inv = 1.0 / self.base ** (torch.arange(0, d, 2, dtype=torch.float32, device=device) / d)
        ang = torch.arange(self.tokens, dtype=torch.float32, device=device)[:, None] * inv[None]
        ang = torch.cat([ang, ang], dim=-1)[:, None, :]            # tokens x 1 x d
        return ang.cos(), ang.sin()

    def reset_buffers(self):
        """Fill the cos/sin tables (again: ``to_empty`` leaves them uninitialised)."""
        with torch.no_grad():
            cos, sin = self._tables(self.cos.device)
            self.cos.copy_(cos)
            self.sin.copy_(sin)

    def forward(self, x):
        n, g, a, b, c = x.shape
        t = x.reshape(n, g, a * b, self.heads, c // self.heads)
        x1, x2 = t.chunk(2, dim=-1)
        # a model without parameters runs where its input is
        cos, sin = (self.cos, self.sin) if self.cos.device == x.device else \
            self._tables(x.device)
        out = t * cos + torch.cat([-x2, x1], dim=-1) * sin
        return out.reshape(n, g, a, b, c)

    def extra_repr(self):
        return f"heads={self.heads}"


class KVCache(nn.Module):
    """The key/value cache of one forward pass from position 0: the cache
    holds just the new tokens, so its content is ``x`` itself (a view).  A
    cache of past tokens (a decode step) is not built: ``to_torch`` refuses it."""

    def forward(self, x):
        return x


def expert_of(n: int, tokens: int, top_k: int, experts: int, device=None) -> torch.Tensor:
    """The expert of every slot, ``n x tokens x top_k``: the slots of the whole
    batch dealt round-robin (slot ``(token, j)`` of sample ``i`` to expert
    ``((i * tokens + token) * top_k + j) % experts``), so a pass hits
    ``min(experts, n * tokens * top_k)`` experts, as a real router at worst
    does."""
    return torch.arange(n * tokens * top_k, device=device).view(n, tokens, top_k) % experts


class ExpertLinear(nn.Module):
    """``experts`` linear layers of a mixture of experts (weights
    ``experts x out x in``), each token's ``top_k`` slots through the expert
    :func:`expert_of` deals them: one ``F.linear`` per expert on the rows it
    receives.  The input is one group (dispatch: every slot reads the token)
    or ``top_k`` groups; the output ``top_k`` groups.  ``hits`` holds the
    experts the last run used."""

    def __init__(self, cin: int, cout: int, experts: int, top_k: int, bias: bool = False):
        super().__init__()
        self.experts, self.top_k = int(experts), int(top_k)
        self.weight = nn.Parameter(torch.zeros(self.experts, int(cout), int(cin)))
        self.bias = nn.Parameter(torch.zeros(self.experts, int(cout))) if bias else None
        self.hits: set = set()

    def forward(self, x):
        n, g, a, b, c = x.shape
        k, slots = self.top_k, n * a * b * self.top_k
        # slot s = (token, j) of the batch, dealt to expert s % experts
        t = x.reshape(n, g, a * b, c).transpose(1, 2).expand(n, a * b, k, c).reshape(slots, c)
        out = x.new_zeros(slots, self.weight.shape[1])
        self.hits = set()
        for e in range(min(self.experts, slots)):
            rows = torch.arange(e, slots, self.experts, device=x.device)
            y = F.linear(t.index_select(0, rows), self.weight[e],
                         None if self.bias is None else self.bias[e])
            out.index_copy_(0, rows, y)
            self.hits.add(e)
        return out.view(n, a * b, k, -1).transpose(1, 2).reshape(n, k, a, b, -1)

    def extra_repr(self):
        return (f"in={self.weight.shape[2]}, out={self.weight.shape[1]}, "
                f"experts={self.experts}, top_k={self.top_k}")


class MoECombine(nn.Module):
    """Each token's ``top_k`` expert outputs weighted by its router
    probabilities for those experts (:func:`expert_of`) and summed."""

    def __init__(self, experts: int):
        super().__init__()
        self.experts = int(experts)

    def forward(self, y, probs):
        n, k, a, b, c = y.shape
        who = expert_of(n, a * b, k, self.experts, y.device)
        w = probs.reshape(n, a * b, -1).gather(-1, who)               # n x tokens x k
        out = (y.reshape(n, k, a * b, c) * w.transpose(1, 2)[..., None]).sum(1)
        return out.reshape(n, 1, a, b, c)


#: nasflops' transformer and language-model modules that are one record each
#: (leaves for the recorder)
TRANSFORMER_MODULES = (ParamAdd, ViewAs, Attention, SelfAttention, PatchMerge, TokenEmbedding,
                       RMSNorm, Rotary, KVCache, ExpertLinear, MoECombine)
