"""Decoder language models as layer specs: configurations, phases, and the zoo.

A decoder is an :class:`LMConfig` (vocabulary, hidden size, layers, heads and
key/value heads, head size, FFN size per layer, experts and top-k, biases,
tied head, learned positions, sliding window) and a *workload*: the phase
(``prefill`` of a prompt of ``seq_len`` tokens, ``decode`` of one new token
at context position ``context``, ``train`` on sequences of ``seq_len``) and
the logits kept.  :func:`build` writes the records of that workload, module
for module in the order Hugging Face ``transformers`` 5.24 runs them, named by
their module paths:

* family ``llama`` (``LlamaForCausalLM``, ``MistralForCausalLM``,
  ``Qwen2ForCausalLM``, ``MixtralForCausalLM``): ``embed_tokens``; per layer
  RMSNorm, q/k/v projections, rotary embedding of q and k, the key/value
  caches, causal attention over ``kv_heads`` key/value heads (GQA/MQA),
  ``o_proj``, the residual add, RMSNorm, the MLP -- gated (``act(gate) *
  up``: SwiGLU with ``silu``, GeGLU with ``gelu``), plain (``up``, act,
  ``down``) or a mixture of experts (router, softmax, ``experts`` expert
  linears of which each token takes ``top_k``, their weighted sum) -- and the
  residual add; the final RMSNorm and ``lm_head`` (tied: the embedding's
  table, no parameters of its own).
* family ``gpt2`` (``GPT2LMHeadModel``): ``wte`` and the learned positions
  ``wpe`` (``n_positions`` rows), per layer LayerNorm, the fused ``c_attn``
  split into q, k, v, the caches, causal attention, ``c_proj``, the residual,
  LayerNorm, ``c_fc``, GELU, ``c_proj``, the residual; ``ln_f`` and the tied
  ``lm_head``.

Phases: ``prefill`` runs ``seq_len`` tokens and writes them into the caches
(past 0); ``decode`` runs one token against caches of ``context`` tokens (a
sliding window of W keeps ``min(context, W - 1)``, as transformers'
``DynamicSlidingWindowLayer`` does), attention over those and its own key;
``train`` runs ``seq_len`` tokens without caches, every logit kept, and flags
each decoder layer's input as a recomputation checkpoint (what
``gradient_checkpointing_enable()`` keeps).  Score the records in the same
phase (``nasflops.score(..., phase=...)``): ``train`` counts forward +
backward and the training memory.

:data:`MODELS` holds published configurations (their ``config.json``) and
:data:`PUBLISHED` their published parameter counts; ``tests/
test_language_models.py`` checks every one against the ``transformers`` model
built from its config class on the meta device (``sum(p.numel())``), and the
counts against ``torch.utils.flop_counter.FlopCounterMode``.

The same builders encode a whole batch of configurations without a loop per
candidate (:func:`encode_batch`): the language-model search spaces use it.

Examples
--------
>>> import nasflops
>>> r = nasflops.score(build("llama-2-7b", phase="decode", context=4096), convention="fma2",
...                    phase="decode", act_dtype="bf16")
>>> int(r["params"][0]), int(r["kv_cache_bytes"][0])
(6738415616, 2148007936)
"""
from __future__ import annotations

import functools
import types
from dataclasses import dataclass
from typing import Mapping, Optional, Union

import numpy as np

from nasflops.options import positive_int
from nasflops.spec import INPUT_FIELDS, LAYER_DTYPE, Flag, Net, SpecBatch, empty_records, parse_act
from .templates import UNUSED, gather_segments

__all__ = ["LMConfig", "Workload", "FAMILIES", "LM_PHASES", "MODELS", "PUBLISHED", "ALIASES",
           "build", "decoder_records", "get_config", "encode_batch", "tokens_per_pass"]

#: decoder families: how a layer is wired (module docstring)
FAMILIES = ("llama", "gpt2")
#: the phases a decoder's records are built for (``nasflops.options.PHASES``)
LM_PHASES = ("prefill", "decode", "train")
#: the largest sizes a configuration may name: record fields are int32, and
#: products of two of them (q width, expert outputs) must stay int32 too
MAX_SIZE = 1 << 24
MAX_LAYERS = 4096
#: heads and key/value heads: the record's kv_heads field is int16
MAX_HEADS = (1 << 15) - 1


def _error(model: str, what: str, reason: str) -> ValueError:
    return ValueError(f"language model {model!r}: {what}: {reason}")


@dataclass(frozen=True)
class LMConfig:
    """A decoder language model's configuration (its ``config.json``).

    Attributes
    ----------
    name : str
        Model name, used in messages.
    family : {"llama", "gpt2"}
        How a layer is wired (module docstring).
    vocab, hidden, layers, heads : int
        Vocabulary, hidden size, decoder layers, query heads.
    ffn : int or tuple of int
        MLP intermediate size (per expert for a mixture of experts); a tuple
        gives one per layer.
    kv_heads : int, optional
        Key/value heads (GQA: fewer than ``heads``, MQA: 1); default ``heads``.
    head_dim : int, optional
        Channels per head; default ``hidden // heads`` (``heads * head_dim``
        may differ from ``hidden``: Llama's ``head_dim``).
    experts, top_k : int
        A mixture of experts in every layer: ``experts`` experts, each token
        routed to ``top_k``; 0 for a dense MLP.
    act : str
        The MLP activation (``silu``: SwiGLU when gated; ``gelu``).
    gated : bool
        Gated MLP (``act(gate) * up``), family ``llama`` only.
    qkv_bias, o_bias, mlp_bias : bool
        Biases of the q/k/v projections (Qwen2), the output projection and
        the MLP (Llama's ``attention_bias`` sets both attention ones).
    tied : bool
        The LM head is the embedding's table (``tie_word_embeddings``).
    positions : int
        Learned position rows (GPT-2's ``n_positions``); 0 for rotary.
    window : int, optional
        Sliding-window attention (Mistral's ``sliding_window``): decoding
        keeps ``window - 1`` cached tokens.

    Examples
    --------
    >>> LMConfig("tiny", vocab=100, hidden=64, layers=2, heads=4, kv_heads=2, ffn=128).head_size
    16
    >>> LMConfig("bad", vocab=100, hidden=64, layers=2, heads=4, kv_heads=3, ffn=128)
    Traceback (most recent call last):
    ...
    ValueError: language model 'bad': kv_heads=3: must divide heads=4 (each key/value head serves heads / kv_heads query heads)
    """

    name: str
    vocab: int
    hidden: int
    layers: int
    heads: int
    ffn: Union[int, tuple]
    family: str = "llama"
    kv_heads: Optional[int] = None
    head_dim: Optional[int] = None
    experts: int = 0
    top_k: int = 0
    act: str = "silu"
    gated: bool = True
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    tied: bool = False
    positions: int = 0
    window: Optional[int] = None

    def __post_init__(self):
        if not isinstance(self.ffn, int):
            object.__setattr__(self, "ffn", tuple(self.ffn))
        self.check()

    # ------------------------------------------------------------ derived
    @property
    def kv(self) -> int:
        """Key/value heads."""
        return self.heads if self.kv_heads is None else self.kv_heads

    @property
    def head_size(self) -> int:
        """Channels per head."""
        return self.hidden // self.heads if self.head_dim is None else self.head_dim

    def ffn_of(self, layer: int) -> int:
        """The MLP intermediate size of decoder layer ``layer``."""
        return self.ffn if isinstance(self.ffn, int) else self.ffn[layer]

    @property
    def moe(self) -> bool:
        return self.experts > 0

    # ---------------------------------------------------------- validation
    def check(self) -> None:
        """Refuse what no model can be: one ``ValueError`` naming the model,
        the field (and the layer) and why."""
        n = self.name
        if self.family not in FAMILIES:
            raise _error(n, f"family={self.family!r}", f"known: {', '.join(FAMILIES)}")
        for f in ("vocab", "hidden", "heads"):
            positive_int(getattr(self, f), f"language model {n!r}: {f}", 1, MAX_SIZE)
        positive_int(self.layers, f"language model {n!r}: layers", 1, MAX_LAYERS)
        ffn = (self.ffn,) * self.layers if isinstance(self.ffn, int) else self.ffn
        if len(ffn) != self.layers:
            raise _error(n, "ffn", f"{len(ffn)} per-layer sizes for {self.layers} layers")
        for i, v in enumerate(ffn):
            positive_int(v, f"language model {n!r}: layer {i}: ffn", 1, MAX_SIZE)
        self._check_heads()
        for f in ("experts", "top_k", "positions"):
            positive_int(getattr(self, f), f"language model {n!r}: {f}", 0, MAX_SIZE)
        if self.experts and not 1 <= self.top_k <= self.experts:
            raise _error(n, f"top_k={self.top_k}", f"must be in 1..experts={self.experts} (each "
                                                   "token is routed to top_k distinct experts)")
        if not self.experts and self.top_k:
            raise _error(n, f"top_k={self.top_k}", "needs experts (experts=0: a dense MLP)")
        if self.window is not None:
            positive_int(self.window, f"language model {n!r}: window", 2, MAX_SIZE)
        parse_act(self.act)
        if self.family == "gpt2":
            self._check_gpt2()
        for what, v in (("heads * head_dim", self.heads * self.head_size),
                        ("experts * ffn", max(self.experts, 1) * 2 * max(ffn))):
            if v > 2**31 - 1:
                raise _error(n, what, f"{v:,} does not fit a record's int32 field")

    def _check_heads(self) -> None:
        n, h, kv = self.name, self.heads, self.kv
        positive_int(h, f"language model {n!r}: heads", 1, MAX_HEADS)
        positive_int(kv, f"language model {n!r}: kv_heads", 1, MAX_HEADS)
        if h % kv:
            raise _error(n, f"kv_heads={kv}", f"must divide heads={h} (each key/value head serves "
                                              "heads / kv_heads query heads)")
        if self.head_dim is None and self.hidden % h:
            raise _error(n, f"heads={h}", f"must divide hidden={self.hidden} (or give head_dim)")
        d = positive_int(self.head_size, f"language model {n!r}: head_dim", 1, MAX_SIZE)
        if self.family == "llama" and d % 2:
            raise _error(n, f"head_dim={d}", "must be even (rotary embedding rotates channel pairs)")

    def _check_gpt2(self) -> None:
        n = self.name
        if self.positions < 1:
            raise _error(n, "positions", "GPT-2 learns its positions: give n_positions >= 1")
        if self.kv != self.heads or self.head_size * self.heads != self.hidden:
            raise _error(n, "heads", "GPT-2 splits hidden into heads x head_dim, no GQA")
        if self.experts or self.gated or self.window is not None:
            raise _error(n, "family", "GPT-2 has a plain GELU MLP (gated=False), no experts and "
                                      "no sliding window")

    # ------------------------------------------------------------ counting
    def params(self) -> dict:
        """Parameter counts by part, written out from the definitions (not from
        records): ``total`` and ``active`` (one token's: ``top_k`` experts).

        >>> MODELS["gpt2"].params()["total"]
        124439808
        """
        h, d, nh, kv = self.hidden, self.head_size, self.heads, self.kv
        attn = h * nh * d + 2 * h * kv * d + nh * d * h
        attn += (nh * d + 2 * kv * d if self.qkv_bias else 0) + (h if self.o_bias else 0)
        norm = 2 * h if self.family == "gpt2" else h                 # LayerNorm: weight + bias
        per_expert = [(3 if self.gated else 2) * h * self.ffn_of(i)
                      + ((2 * self.ffn_of(i) + h if self.gated else self.ffn_of(i) + h)
                         if self.mlp_bias else 0) for i in range(self.layers)]
        router = self.experts * h if self.moe else 0
        mlp = [router + max(self.experts, 1) * p for p in per_expert]
        embed = self.vocab * h + self.positions * h
        total = embed + sum(attn + 2 * norm + m for m in mlp) + norm + (0 if self.tied else self.vocab * h)
        inactive = sum((self.experts - self.top_k) * p for p in per_expert) if self.moe else 0
        return {"embedding": embed, "attention_per_layer": attn, "mlp": sum(mlp),
                "total": total, "active": total - inactive}


# --------------------------------------------------------------- the zoo
def _gpt2(name: str, hidden: int, layers: int, heads: int) -> LMConfig:
    return LMConfig(name, family="gpt2", vocab=50257, hidden=hidden, layers=layers, heads=heads,
                    ffn=4 * hidden, act="gelu", gated=False, qkv_bias=True, o_bias=True,
                    mlp_bias=True, tied=True, positions=1024)


def _llama(name: str, vocab: int, hidden: int, layers: int, heads: int, kv_heads: int, ffn: int,
           **kw) -> LMConfig:
    return LMConfig(name, vocab=vocab, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads,
                    ffn=ffn, **kw)


#: published configurations (each model's ``config.json`` on the Hugging Face
#: hub: ``gpt2``, ``meta-llama/Llama-2-7b-hf``, ``mistralai/Mixtral-8x7B-v0.1``,
#: ``Qwen/Qwen2.5-7B``, ...)
MODELS: dict[str, LMConfig] = {c.name: c for c in (
    _gpt2("gpt2", 768, 12, 12),
    _gpt2("gpt2-medium", 1024, 24, 16),
    _gpt2("gpt2-large", 1280, 36, 20),
    _gpt2("gpt2-xl", 1600, 48, 25),
    _llama("llama-2-7b", 32000, 4096, 32, 32, 32, 11008),
    _llama("llama-2-13b", 32000, 5120, 40, 40, 40, 13824),
    _llama("llama-3-8b", 128256, 4096, 32, 32, 8, 14336),
    _llama("mistral-7b", 32000, 4096, 32, 32, 8, 14336, window=4096),
    _llama("mixtral-8x7b", 32000, 4096, 32, 32, 8, 14336, experts=8, top_k=2),
    _llama("qwen2.5-0.5b", 151936, 896, 24, 14, 2, 4864, qkv_bias=True, tied=True),
    _llama("qwen2.5-7b", 152064, 3584, 28, 28, 4, 18944, qkv_bias=True),
)}
#: the hub's names of the zoo models
ALIASES: dict[str, str] = {
    "gpt2-small": "gpt2", "meta-llama/Llama-2-7b-hf": "llama-2-7b",
    "meta-llama/Llama-2-13b-hf": "llama-2-13b", "meta-llama/Meta-Llama-3-8B": "llama-3-8b",
    "mistralai/Mistral-7B-v0.1": "mistral-7b", "mistralai/Mixtral-8x7B-v0.1": "mixtral-8x7b",
    "Qwen/Qwen2.5-0.5B": "qwen2.5-0.5b", "Qwen/Qwen2.5-7B": "qwen2.5-7b",
}
#: parameter counts as published (model cards, papers: rounded) and as
#: ``sum(p.numel())`` of the transformers model (exact): (published, exact);
#: Mixtral: total and active per token
PUBLISHED: dict[str, tuple] = {
    "gpt2": ("124M", 124_439_808),
    "gpt2-medium": ("355M", 354_823_168),
    "gpt2-large": ("774M", 774_030_080),
    "gpt2-xl": ("1.5B", 1_557_611_200),
    "llama-2-7b": ("7B (6.74B)", 6_738_415_616),
    "llama-2-13b": ("13B (13.0B)", 13_015_864_320),
    "llama-3-8b": ("8B (8.03B)", 8_030_261_248),
    "mistral-7b": ("7.3B", 7_241_732_096),
    "mixtral-8x7b": ("46.7B total, 12.9B active", (46_702_792_704, 12_879_925_248)),
    "qwen2.5-0.5b": ("0.49B", 494_032_768),
    "qwen2.5-7b": ("7.61B", 7_615_616_512),
}


def get_config(model) -> LMConfig:
    """An :class:`LMConfig` itself, or the zoo's by name (or hub name).

    >>> get_config("meta-llama/Llama-2-7b-hf").hidden
    4096
    """
    if isinstance(model, LMConfig):
        return model
    name = ALIASES.get(str(model), str(model))
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown language model {str(model)!r}; known: {', '.join(MODELS)}") from None


# ------------------------------------------------------------- workloads
@dataclass(frozen=True)
class Workload:
    """What a pass runs: the ``phase``, the new tokens per sequence
    (``tokens``), the tokens already cached (``past``), whether the keys and
    values go to caches, the logits kept (``all`` or ``last``) and whether
    decoder-layer inputs are recomputation checkpoints (training)."""

    phase: str
    tokens: int
    past: int = 0
    cache: bool = True
    logits: str = "all"
    checkpoints: bool = False

    @classmethod
    def make(cls, phase: str = "prefill", seq_len: Optional[int] = None,
             context: Optional[int] = None, logits: Optional[str] = None) -> "Workload":
        """Validate a phase and its sizes: ``prefill`` and ``train`` need
        ``seq_len``, ``decode`` needs ``context`` (the new token's position:
        tokens already cached).  ``logits``: ``all`` positions (the default,
        as a forward pass and training compute) or the ``last`` (generation)."""
        if phase not in LM_PHASES:
            raise ValueError(f"unknown language-model phase {phase!r}; known: {', '.join(LM_PHASES)}")
        if logits not in (None, "all", "last"):
            raise ValueError(f"logits must be 'all' or 'last', got {logits!r}")
        if phase == "decode":
            if seq_len is not None:
                raise ValueError("decode runs one new token: give its context (tokens already "
                                 "cached), not seq_len")
            if context is None:
                raise ValueError("decode needs a context: the tokens already cached")
            return cls("decode", 1, positive_int(context, "context", 0, MAX_SIZE), True, "last")
        if context is not None:
            raise ValueError(f"{phase} runs seq_len new tokens from position 0: give seq_len, "
                             "not context")
        if seq_len is None:
            raise ValueError(f"{phase} needs seq_len: the tokens of each sequence")
        seq_len = positive_int(seq_len, "seq_len", 1, MAX_SIZE)
        if phase == "train":
            if logits == "last":
                raise ValueError("training computes the loss on every position: logits='all'")
            return cls("train", seq_len, 0, False, "all", True)
        return cls("prefill", seq_len, 0, True, logits or "all")

    def past_for(self, cfg) -> int:
        """Cached tokens attention reads: a sliding window keeps ``window - 1``."""
        w = getattr(cfg, "window", None)
        return self.past if w is None else min(self.past, w - 1)


def tokens_per_pass(workload: Workload, batch_size: int = 1) -> int:
    """New tokens one pass processes: ``batch_size x tokens``.

    >>> tokens_per_pass(Workload.make("decode", context=100), batch_size=8)
    8
    """
    return batch_size * workload.tokens


# ------------------------------------------------------------ the builders
# One builder per part (prefix, decoder layer, suffix) and family, written
# against Net's methods.  Run on a Net with a configuration's ints it writes
# one model; run on a _Recorder with numpy arrays (one value per candidate)
# it records a template that encode_batch assembles for a whole batch.
def _prefix(net: Net, c, w: Workload) -> int:
    if c.family == "gpt2":
        x = net.embedding(net.input, c.vocab, c.hidden, name="transformer.wte")
        with net.calling("operator"):           # inputs_embeds + position_embeds
            return net.param_add(x, c.positions * c.hidden, name="transformer.wpe")
    return net.embedding(net.input, c.vocab, c.hidden, name="model.embed_tokens")


def _attention_llama(net: Net, x: int, c, w: Workload, p: str) -> int:
    d = c.head_dim
    q = net.linear(x, c.heads * d, bias=c.qkv_bias, name=p + "q_proj")
    k = net.linear(x, c.kv_heads * d, bias=c.qkv_bias, name=p + "k_proj")
    v = net.linear(x, c.kv_heads * d, bias=c.qkv_bias, name=p + "v_proj")
    with net.calling("function"):               # apply_rotary_pos_emb(q, k, cos, sin)
        q, k = net.rope(q, c.heads), net.rope(k, c.kv_heads)
    if w.cache:
        with net.calling("method"):             # cache.update(k, v, layer_idx)
            k, v = net.kv_cache(k, w.past_for(c)), net.kv_cache(v, w.past_for(c))
    with net.calling("function"):               # attention_interface (eager / sdpa)
        a = net.attention(q, k, v, heads=c.heads, kv_heads=c.kv_heads, causal=True)
    return net.linear(a, c.hidden, bias=c.o_bias, name=p + "o_proj")


def _attention_gpt2(net: Net, x: int, c, w: Workload, p: str) -> int:
    qkv = net.linear(x, 3 * c.hidden, name=p + "c_attn")
    with net.calling("method"):                 # .split(split_size, dim=2)
        q, k, v = (net.slice(qkv, i * c.hidden, c.hidden) for i in range(3))
        if w.cache:
            k, v = net.kv_cache(k, w.past), net.kv_cache(v, w.past)
    with net.calling("function"):
        a = net.attention(q, k, v, heads=c.heads, causal=True)
    return net.linear(a, c.hidden, name=p + "c_proj")


def _mlp(net: Net, x: int, c, ffn, p: str) -> int:
    if c.family == "gpt2":
        y = net.act(net.linear(x, ffn, name=p + "c_fc"), c.act, name=p + "act")
        return net.linear(y, c.hidden, name=p + "c_proj")
    if c.experts_on:
        return _moe(net, x, c, ffn, p)
    b = c.mlp_bias
    if not c.gated:
        y = net.act(net.linear(x, ffn, bias=b, name=p + "up_proj"), c.act, name=p + "act_fn")
        return net.linear(y, c.hidden, bias=b, name=p + "down_proj")
    # down_proj(act_fn(gate_proj(x)) * up_proj(x)), evaluated left to right
    g = net.act(net.linear(x, ffn, bias=b, name=p + "gate_proj"), c.act, name=p + "act_fn")
    u = net.linear(x, ffn, bias=b, name=p + "up_proj")
    with net.calling("operator"):
        y = net.mul(g, u)
    return net.linear(y, c.hidden, bias=b, name=p + "down_proj")


def _moe(net: Net, x: int, c, ffn, p: str) -> int:
    """Mixtral's sparse MoE block: router logits, softmax (the top-k of which
    are renormalised: not counted), the experts' fused gate/up projection
    over each token's top_k experts, act(gate) * up, the down projection,
    and each token's slots weighted and summed."""
    r = net.linear(x, c.experts, bias=False, name=p + "gate")
    with net.calling("function"):
        probs = net.softmax(r)
    k, e, b = c.top_k, c.experts, c.mlp_bias
    if c.gated:
        gu = net.expert_linear(x, 2 * ffn, e, k, bias=b, name=p + "experts.gate_up_proj")
        with net.calling("method"):             # .chunk(2, dim=-1)
            g, u = net.slice(gu, 0, ffn), net.slice(gu, ffn, ffn)
        g = net.act(g, c.act, name=p + "experts.act_fn")
        with net.calling("operator"):
            y = net.mul(g, u)
    else:
        y = net.act(net.expert_linear(x, ffn, e, k, bias=b, name=p + "experts.up_proj"), c.act,
                    name=p + "experts.act_fn")
    y = net.expert_linear(y, c.hidden, e, k, bias=b, name=p + "experts.down_proj")
    with net.calling("function"):               # index_add_ of the weighted slots
        return net.moe_combine(y, probs)


def _layer(net: Net, x: int, c, ffn, w: Workload, p: str, checkpoint) -> int:
    """One decoder layer: pre-norm attention and MLP, two residual adds; its
    input is a recomputation checkpoint where ``checkpoint`` (training)."""
    gpt2 = c.family == "gpt2"
    norm = (lambda y, n: net.layernorm(y, name=p + n)) if gpt2 else (lambda y, n: net.rmsnorm(y, name=p + n))
    h = norm(x, "ln_1" if gpt2 else "input_layernorm")
    a = (_attention_gpt2(net, h, c, w, p + "attn.") if gpt2
         else _attention_llama(net, h, c, w, p + "self_attn."))
    with net.calling("operator"):
        x = net.add(x, a)
    h = norm(x, "ln_2" if gpt2 else "post_attention_layernorm")
    m = _mlp(net, h, c, ffn, p + "mlp.")
    with net.calling("operator"):
        out = net.add(x, m)
    _mark_checkpoint(net, out, checkpoint)
    return out


def _suffix(net: Net, x: int, c, w: Workload) -> int:
    x = net.layernorm(x, name="transformer.ln_f") if c.family == "gpt2" else \
        net.rmsnorm(x, name="model.norm")
    if w.logits == "last" and w.tokens > 1:
        with net.calling("operator"):           # hidden_states[:, -1:] (logits_to_keep=1)
            x = net.slice(x, w.tokens - 1, 1, tokens=True)
    return net.linear(x, c.vocab, bias=False, tied=c.tied, name="lm_head")


def _mark_checkpoint(net: Net, x: int, where) -> None:
    if isinstance(net, _Recorder):
        net.flag(x, Flag.CHECKPOINT, where)
    elif where:
        net.checkpoint(x)


def _scalars(cfg: LMConfig) -> types.SimpleNamespace:
    """The fields the builders read, as ints (one model)."""
    return types.SimpleNamespace(
        family=cfg.family, vocab=cfg.vocab, hidden=cfg.hidden, heads=cfg.heads, kv_heads=cfg.kv,
        head_dim=cfg.head_size, experts=cfg.experts, top_k=cfg.top_k, experts_on=cfg.moe,
        act=cfg.act, gated=cfg.gated, qkv_bias=cfg.qkv_bias, o_bias=cfg.o_bias,
        mlp_bias=cfg.mlp_bias, tied=cfg.tied, positions=cfg.positions, window=cfg.window)


def _check_positions(cfg: LMConfig, w: Workload) -> None:
    if cfg.positions and w.past + w.tokens > cfg.positions:
        raise _error(cfg.name, f"{w.phase} of {w.past + w.tokens} positions",
                     f"exceeds its {cfg.positions} learned positions")


@functools.lru_cache(maxsize=32)
def _cached(cfg: LMConfig, w: Workload) -> tuple:
    """``(records, names, layer)``: ``layer[i]`` is record i's decoder layer
    (-1 before the first, ``layers`` after the last)."""
    _check_positions(cfg, w)
    c = _scalars(cfg)
    net = Net(1, w.tokens, 1)                   # token ids: one channel per position
    x = _prefix(net, c, w)
    _mark_checkpoint(net, x, w.checkpoints)
    prefix = "transformer.h." if cfg.family == "gpt2" else "model.layers."
    starts = []
    for i in range(cfg.layers):
        starts.append(len(net))
        x = _layer(net, x, c, cfg.ffn_of(i), w, f"{prefix}{i}.",
                   w.checkpoints and i < cfg.layers - 1)
    starts.append(len(net))
    _suffix(net, x, c, w)
    rec = net.records
    rec.setflags(write=False)
    layer = np.searchsorted(np.array(starts), np.arange(len(rec)), side="right") - 1
    layer.setflags(write=False)
    return rec, tuple(net.names), layer


def decoder_records(model, workload: Workload) -> tuple:
    """``(records, names, layer)`` of ``model``'s pass ``workload``: each
    record's module path and decoder layer (-1 before the first layer,
    ``layers`` after the last).  Copies; :func:`build` is the short form."""
    rec, names, layer = _cached(get_config(model), workload)
    return rec.copy(), list(names), layer.copy()


def build(model, phase: str = "prefill", seq_len: Optional[int] = None,
          context: Optional[int] = None, logits: Optional[str] = None,
          with_names: bool = False):
    """Records of a decoder's pass: ``model`` (an :class:`LMConfig`, or a zoo
    name) in ``phase`` (``prefill``/``train`` of ``seq_len`` tokens, ``decode``
    of one token after ``context`` cached ones), keeping ``logits`` (``all`` or
    ``last``).  With ``with_names=True``, ``(records, names)``: each record's
    module path in the transformers model (``""`` for function, method and
    operator calls).

    >>> import nasflops
    >>> rec, names = build("gpt2", seq_len=1024, with_names=True)
    >>> names[1:4], int(nasflops.score(rec)["params"][0])
    (['transformer.wte', 'transformer.wpe', 'transformer.h.0.ln_1'], 124439808)
    """
    rec, names, _ = decoder_records(model, Workload.make(phase, seq_len, context, logits))
    return (rec, names) if with_names else rec


# ------------------------------------------------------- batches of configs
class _Recorder(Net):
    """A :class:`~nasflops.Net` that keeps its records' fields as given --
    numpy arrays, one value per row of a batch -- so that the builders above
    write a template: entry ``k`` is the record at local index ``k`` (index
    0 is the part's input), with the call kind, inputs and fields."""

    def __init__(self):
        super().__init__(1, 1, 1)
        self.entries: list[tuple[int, int, list, dict]] = []

    def _append(self, op, inputs, name="", **fields):
        self.entries.append((int(op), self._call, [int(i) for i in inputs], dict(fields)))
        return len(self.entries)

    def flag(self, x: int, bit: int, where) -> None:
        """OR ``bit`` into entry ``x``'s flags where ``where`` (per row)."""
        f = self.entries[x - 1][3]
        f["flags"] = np.asarray(f.get("flags", 0), dtype=np.int64) | np.where(where, int(bit), 0)


def _columns(rows: Mapping[str, np.ndarray], static: Mapping) -> types.SimpleNamespace:
    """The builders' namespace over a batch: per-row arrays and static values."""
    return types.SimpleNamespace(**static, **rows)


def _template(entries) -> tuple[np.ndarray, list]:
    """A recorded part as template records (inputs relative to each record,
    scalar fields set) and its per-row fields ``[(entry, field, values)]``."""
    rec = empty_records(len(entries))
    per_row = []
    for k, (op, call, inputs, flds) in enumerate(entries):
        rec[k]["op"], rec[k]["call"] = op, call
        for s, f in enumerate(INPUT_FIELDS):
            rec[k][f] = inputs[s] - (k + 1) if s < len(inputs) else UNUSED
        for f, v in flds.items():
            if np.ndim(v):
                per_row.append((k, f, np.asarray(v)))
            else:
                rec[k][f] = int(v)
    return rec, per_row


def _patch(out: np.ndarray, first: np.ndarray, per_row, cand: np.ndarray, model: str) -> None:
    """Write the per-row fields of a part whose first record, per row, is at ``first``."""
    for k, f, v in per_row:
        info = np.iinfo(LAYER_DTYPE[f])
        if v.size and (v.min() < info.min or v.max() > info.max):
            i = int(np.argmax((v < info.min) | (v > info.max)))
            raise ValueError(f"{model}: candidate {int(cand[i])}: {f}={int(v[i])} does not fit "
                             f"the record's {LAYER_DTYPE[f].name} field")
        out[f][first + k] = v


def encode_batch(cols: Mapping[str, np.ndarray], static: Mapping, w: Workload,
                 model: str = "space") -> SpecBatch:
    """Records of a batch of configurations, without a loop per candidate.

    ``cols``: per-candidate int arrays ``layers``, ``vocab``, ``hidden``,
    ``heads``, ``kv_heads``, ``head_dim``, ``experts``, ``top_k`` and
    ``ffn`` (``(n, max_layers)``: layer ``l`` of candidate ``i`` is
    ``ffn[i, l]``); ``static``: what is the same for all (``family``,
    ``act``, ``gated``, ``experts_on``, biases, ``tied``, ``positions``,
    ``window``).  The configurations must be valid (a space validates its
    choices once); the records equal :func:`build`'s for each, record for
    record (``tests/test_language_models.py``).
    """
    n = len(cols["layers"])
    depth = np.asarray(cols["layers"], dtype=np.int64)
    ffn = np.asarray(cols["ffn"], dtype=np.int64).reshape(n, -1)
    per = {k: np.asarray(v, dtype=np.int64) for k, v in cols.items() if k not in ("layers", "ffn")}
    cand = np.arange(n)
    ci, li = np.nonzero(np.arange(ffn.shape[1])[None, :] < depth[:, None])   # every layer
    # the three parts recorded once, each field one value per candidate (layer)
    head, layer, tail = _Recorder(), _Recorder(), _Recorder()
    _mark_checkpoint(head, _prefix(head, _columns(per, static), w), np.full(n, w.checkpoints))
    _layer(layer, 0, _columns({k: v[ci] for k, v in per.items()}, static), ffn[ci, li], w, "",
           (li < depth[ci] - 1) & w.checkpoints)
    _suffix(tail, 0, _columns(per, static), w)
    (h_rec, h_rows), (l_rec, l_rows), (t_rec, t_rows) = map(_template, (head.entries,
                                                                        layer.entries, tail.entries))
    inp = empty_records(1)                      # token ids: one channel per position
    inp["out_channels"], inp["size_h"], inp["size_w"] = 1, w.tokens, 1
    pool = np.concatenate([inp, h_rec, l_rec, t_rec])
    P, R, S = len(h_rec) + 1, len(l_rec), len(t_rec)
    # segments: the prefix, one per layer (empty beyond the depth), the suffix
    seg_src = np.full((n, ffn.shape[1] + 2), P, dtype=np.int64)
    seg_src[:, 0], seg_src[:, -1] = 0, P + R
    seg_len = np.zeros_like(seg_src)
    seg_len[:, 0], seg_len[:, -1] = P, S
    seg_len[:, 1:-1] = np.where(np.arange(ffn.shape[1])[None, :] < depth[:, None], R, 0)
    batch = gather_segments(pool, seg_src, seg_len)
    out, offsets = batch.records, batch.offsets
    _patch(out, offsets[:-1] + 1, h_rows, cand, model)
    _patch(out, offsets[ci] + P + li * R, l_rows, ci, model)
    _patch(out, offsets[:-1] + P + depth * R, t_rows, cand, model)
    return batch
