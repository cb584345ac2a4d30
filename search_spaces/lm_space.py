"""Language-model search spaces: decoders with choices, declared as data.

A definition (a dict, or a YAML file with ``type: language_model``) names a
decoder family and the choices a candidate makes: layers, hidden size, heads
and key/value heads, FFN size (one for the whole model, or one per layer
with ``per_layer: true``), experts and top-k; the vocabulary and everything
else are fixed per space.  The space is built for one workload -- the phase
(``prefill``, ``decode``, ``train``) and its sequence length or context --
given as parameters with defaults in the definition, so its candidates are
scored in that phase (``score_space`` and ``sample_within`` read
``space.phase``).  Every combination of choices is checked once when the
space is built (heads divide the hidden size, key/value heads divide the
heads, top-k at most the experts, ...): a definition that allows an invalid
model is refused with one :class:`SchemaError` naming the key and the
combination.

.. code-block:: yaml

    type: language_model
    name: my-llm
    family: llama            # llama (RMSNorm, RoPE, gated MLP) or gpt2
    vocab: 32000
    layers: [12, 16, 20, 24]
    hidden: [768, 1024, 1536]
    heads: [12, 16]          # head_dim: hidden / heads, unless head_dim is given
    kv_heads: [1, 2, 4]      # must divide every heads choice
    ffn: {choices: [2048, 3072, 4096], per_layer: true}
    experts: [8]             # omitted or 0: a dense MLP
    top_k: [1, 2]
    act: silu                # gated: SwiGLU
    tied: false
    phase: prefill           # parameters: get_space(..., phase="decode", context=4096)
    seq_len: 2048
    context: 4096

The native encoding is a dict ``{"layers", "hidden", "heads", "kv_heads",
"ffn", "experts", "top_k"}`` (the last two in mixture-of-experts spaces);
with ``per_layer`` FFN, ``ffn`` is a list of one size per layer up to the
largest depth (entries beyond ``layers`` are unused, as OFA's are).

Examples
--------
>>> import nasflops
>>> space = LMSpace({"name": "tiny-lm", "vocab": 1000, "layers": [2, 4], "hidden": [64, 128],
...                  "heads": [4, 8], "kv_heads": [1, 2, 4], "ffn": [256, 512], "seq_len": 128})
>>> r = nasflops.score(space.sample(1000, seed=0), convention="fma2", phase=space.phase)
>>> bool((r["params"] > 0).all()), r.phase
(True, 'prefill')
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from nasflops.spec import SpecBatch, parse_act
from .base import SearchSpace
from .columns import NativeError
from .declarative import SchemaError
from .declarative import load_space as load_declarative
from .language_models import FAMILIES, LM_PHASES, LMConfig, Workload, encode_batch

__all__ = ["LMSpace", "load_space", "is_lm_definition"]

_CHOICES = ("layers", "hidden", "heads", "kv_heads", "ffn", "experts", "top_k")
_FIXED = {"family": "llama", "vocab": None, "head_dim": None, "act": "silu", "gated": True,
          "qkv_bias": False, "o_bias": False, "mlp_bias": False, "tied": False, "positions": 0,
          "window": None}
#: GPT-2's wiring, the defaults of family gpt2
_GPT2 = {"act": "gelu", "gated": False, "qkv_bias": True, "o_bias": True, "mlp_bias": True,
         "tied": True, "positions": 1024}
_PARAMS = {"phase": "prefill", "seq_len": 2048, "context": 4096, "logits": "all"}
_META = {"type", "name", "description", "reference"}


def is_lm_definition(definition) -> bool:
    """Whether a loaded YAML/dict definition is a language-model space."""
    return isinstance(definition, Mapping) and definition.get("type") == "language_model"


def _choices(key: str, value, lo: int = 1) -> tuple:
    """An int or a list of ints, as a sorted tuple of distinct choices."""
    vals = value if isinstance(value, (list, tuple)) else [value]
    if not vals:
        raise SchemaError(key, "needs at least one choice")
    out = []
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= (1 << 24):
            raise SchemaError(key, f"choices are integers in {lo}..{1 << 24:,}, got {v!r}")
        out.append(v)
    return tuple(sorted(set(out)))


class LMSpace(SearchSpace):
    """A decoder language-model search space (module docstring).

    Parameters
    ----------
    definition : mapping
        The space (keys in the module docstring).
    source : str, optional
        The file it came from (rebuilt from it, ``params["path"]``, unless
        ``shipped``).
    shipped : bool
        Shipped with nasflops: rebuilt from its name.
    phase, seq_len, context, logits
        The workload, overriding the definition's: ``prefill``/``train`` of
        ``seq_len`` tokens, ``decode`` of one token after ``context``.
    """

    reference = ("decoder LMs as in Hugging Face transformers (LlamaForCausalLM, "
                 "MixtralForCausalLM, GPT2LMHeadModel): width/depth/GQA/MoE search "
                 "(Minitron, Flextron)")
    native_example = "{'layers': 16, 'hidden': 1024, 'heads': 16, 'kv_heads': 4, 'ffn': 4096}"

    def __init__(self, definition: Mapping, source: Optional[str] = None, shipped: bool = False,
                 phase: Optional[str] = None, seq_len: Optional[int] = None,
                 context: Optional[int] = None, logits: Optional[str] = None):
        if not isinstance(definition, Mapping):
            raise SchemaError("definition", f"must be a mapping, got {type(definition).__name__}")
        known = set(_CHOICES) | set(_FIXED) | set(_PARAMS) | _META
        unknown = sorted(set(map(str, definition)) - known)
        if unknown:
            raise SchemaError(unknown[0], f"unknown key; known: {', '.join(sorted(known))}")
        if definition.get("type", "language_model") != "language_model":
            raise SchemaError("type", "must be 'language_model'")
        self.definition, self.source, self.shipped = dict(definition), source, shipped
        self.name = str(definition.get("name") or "")
        if not self.name:
            raise SchemaError("name", "a language-model space needs a name")
        self.reference = str(definition.get("reference") or definition.get("description")
                             or LMSpace.reference)
        self.fixed = self._fixed(definition)
        self.choices, self.per_layer = self._read_choices(definition)
        self.max_layers = max(self.choices["layers"])
        self.workload = self._workload(definition, phase, seq_len, context, logits)
        self.phase = self.workload.phase
        self._check_combinations()
        self.native_columns = {k: f"{k} (int)" for k in self._columns}
        if self.per_layer:
            self.native_columns["ffn"] = f"FFN size per layer ({self.max_layers} ints)"

    # ------------------------------------------------------------ reading
    def _fixed(self, d: Mapping) -> dict:
        family = d.get("family", "llama")
        if family not in FAMILIES:
            raise SchemaError("family", f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
        defaults = {**_FIXED, **(_GPT2 if family == "gpt2" else {})}
        fixed = {k: d.get(k, v) for k, v in defaults.items()}
        v = fixed["vocab"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SchemaError("vocab", f"the vocabulary is fixed per space: one integer >= 1, got {v!r}")
        for k in ("gated", "qkv_bias", "o_bias", "mlp_bias", "tied"):
            if not isinstance(fixed[k], bool):
                raise SchemaError(k, f"must be true or false, got {fixed[k]!r}")
        for k, lo in (("head_dim", 1), ("positions", 0), ("window", 2)):
            v = fixed[k]
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
                raise SchemaError(k, f"must be an integer >= {lo}" + ("" if k == "positions" else
                                                                      " or omitted") + f", got {v!r}")
        try:
            parse_act(fixed["act"])
        except ValueError as e:
            raise SchemaError("act", str(e)) from None
        return fixed

    def _read_choices(self, d: Mapping) -> tuple[dict, bool]:
        out, per_layer = {}, False
        for k in ("layers", "hidden", "heads", "ffn"):
            if k not in d:
                raise SchemaError(k, "missing: give one value or a list of choices")
        ffn = d["ffn"]
        if isinstance(ffn, Mapping):
            extra = set(map(str, ffn)) - {"choices", "per_layer"}
            if extra or "choices" not in ffn:
                raise SchemaError("ffn", "is a list of choices, or {choices: [...], per_layer: true}")
            per_layer = ffn.get("per_layer", False)
            if not isinstance(per_layer, bool):
                raise SchemaError("ffn.per_layer", f"must be true or false, got {per_layer!r}")
            ffn = ffn["choices"]
        out["ffn"] = _choices("ffn", ffn)
        for k in ("layers", "hidden", "heads"):
            out[k] = _choices(k, d[k])
        out["kv_heads"] = _choices("kv_heads", d["kv_heads"]) if "kv_heads" in d else None
        experts = _choices("experts", d.get("experts", 0), lo=0)
        if 0 in experts and experts != (0,):
            raise SchemaError("experts", "a space is dense (0) or a mixture of experts (>= 1), not both")
        out["experts"] = experts
        out["top_k"] = _choices("top_k", d.get("top_k", 0 if experts == (0,) else 1),
                                lo=0 if experts == (0,) else 1)
        if experts == (0,) and out["top_k"] != (0,):
            raise SchemaError("top_k", "needs experts")
        return out, per_layer

    def _workload(self, d, phase, seq_len, context, logits) -> Workload:
        phase = phase or d.get("phase", _PARAMS["phase"])
        if phase not in LM_PHASES:
            raise SchemaError("phase", f"unknown phase {phase!r}; known: {', '.join(LM_PHASES)}")
        try:
            if phase == "decode":
                if seq_len is not None:
                    raise ValueError("decode runs one new token after a context: give context, "
                                     "not seq_len")
                return Workload.make(phase, None, context if context is not None
                                     else d.get("context", _PARAMS["context"]))
            if context is not None:
                raise ValueError(f"{phase} runs seq_len tokens: give seq_len, not context")
            return Workload.make(phase, seq_len if seq_len is not None else
                                 d.get("seq_len", _PARAMS["seq_len"]), None,
                                 None if phase == "train" else logits or d.get("logits", "all"))
        except ValueError as e:
            raise SchemaError("phase", str(e)) from None

    @property
    def moe(self) -> bool:
        return self.choices["experts"] != (0,)

    @property
    def _columns(self) -> tuple:
        return ("layers", "hidden", "heads", "kv_heads", "ffn") + (("experts", "top_k") if self.moe else ())

    def _config(self, layers, hidden, heads, kv, ffn, experts, top_k) -> LMConfig:
        f = self.fixed
        return LMConfig(self.name, vocab=f["vocab"], hidden=hidden, layers=layers, heads=heads,
                        ffn=ffn, family=f["family"], kv_heads=kv, head_dim=f["head_dim"],
                        experts=experts, top_k=top_k, act=f["act"], gated=f["gated"],
                        qkv_bias=f["qkv_bias"], o_bias=f["o_bias"], mlp_bias=f["mlp_bias"],
                        tied=f["tied"], positions=f["positions"], window=f["window"])

    def _check_combinations(self) -> None:
        """Every combination of choices makes a valid model, or one SchemaError."""
        c = self.choices
        kv = c["kv_heads"] or (None,)
        combos = itertools.product(c["hidden"], c["heads"], kv, c["experts"], c["top_k"])
        for hidden, heads, k, e, top in combos:
            try:
                cfg = self._config(self.max_layers, hidden, heads, k, max(c["ffn"]), e, top)
                if cfg.positions and self.workload.past + self.workload.tokens > cfg.positions:
                    raise ValueError(f"{self.workload.phase} of {self.workload.past + self.workload.tokens} "
                                     f"positions exceeds the {cfg.positions} learned positions")
            except ValueError as err:
                raise SchemaError("choices", f"hidden={hidden}, heads={heads}"
                                  + ("" if k is None else f", kv_heads={k}")
                                  + (f", experts={e}, top_k={top}" if self.moe else "")
                                  + f" is not a valid model: {err}") from None

    # ----------------------------------------------------------- contract
    @property
    def params(self) -> dict:
        w = self.workload
        p = {"phase": w.phase}
        p.update({"context": w.past} if w.phase == "decode" else {"seq_len": w.tokens})
        if w.phase == "prefill":
            p["logits"] = w.logits
        if not self.shipped and self.source is not None:
            p = {"path": self.source, **p}
        return p

    @property
    def size(self) -> int:
        c = self.choices
        depths = sum(len(c["ffn"]) ** d for d in c["layers"]) if self.per_layer else \
            len(c["layers"]) * len(c["ffn"])
        return (depths * len(c["hidden"]) * len(c["heads"]) * len(c["kv_heads"] or (0,))
                * len(c["experts"]) * len(c["top_k"]))

    def _sample_block(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        cols = {}
        for k in self._columns:
            if k == "kv_heads" and not self.choices[k]:     # as many as heads
                cols[k] = cols["heads"].copy()
                continue
            ch = np.asarray(self.choices[k], dtype=np.int32)
            shape = (n, self.max_layers) if k == "ffn" and self.per_layer else (n,)
            cols[k] = ch[rng.integers(0, len(ch), size=shape)]
        return cols

    def _check_columns(self, cols: Mapping[str, np.ndarray]) -> dict:
        """The columns as int arrays, every value one of its choices (else a
        NativeError naming the candidate and the field)."""
        out = {}
        for k in self._columns:
            if k not in cols:
                raise NativeError(self.name, None, k, "missing column")
            v = np.asarray(cols[k])
            want = (2 if k == "ffn" and self.per_layer else 1)
            if v.ndim != want or (want == 2 and v.shape[1] != self.max_layers):
                raise NativeError(self.name, None, k, f"expected a {want}-D column"
                                  + (f" of {self.max_layers} per-layer sizes" if want == 2 else "")
                                  + f", got shape {v.shape}")
            if v.size and v.dtype.kind not in "iu":
                raise NativeError(self.name, None, k, f"expected integers, got dtype {v.dtype}")
            ok = np.isin(v, self.choices[k]) if (k != "kv_heads" or self.choices[k]) else \
                v == np.asarray(cols["heads"])
            if v.ndim == 2:
                used = np.arange(self.max_layers)[None, :] < np.asarray(cols["layers"])[:, None]
                ok = ok | ~used
                ok = ok.all(axis=1)
            if not ok.all():
                i = int(np.argmin(ok))
                what = self.choices[k] if (k != "kv_heads" or self.choices[k]) else "heads"
                raise NativeError(self.name, i, k, f"{v[i].tolist()} is not a choice (choices: {what})")
            out[k] = v.astype(np.int64)
        heads, kv = out["heads"], out["kv_heads"]
        if np.any(heads % kv):
            i = int(np.argmax(heads % kv != 0))
            raise NativeError(self.name, i, "kv_heads", f"{kv[i]} does not divide heads={heads[i]}")
        return out

    def encode_columns(self, cols: Mapping[str, np.ndarray]) -> SpecBatch:
        c = self._check_columns(cols)
        n = len(c["layers"])
        f = self.fixed
        hd = c["hidden"] // c["heads"] if f["head_dim"] is None else np.full(n, f["head_dim"])
        ffn = c["ffn"] if self.per_layer else np.repeat(c["ffn"][:, None], self.max_layers, axis=1)
        batch_cols = {"layers": c["layers"], "ffn": ffn, "vocab": np.full(n, f["vocab"]),
                      "hidden": c["hidden"], "heads": c["heads"], "kv_heads": c["kv_heads"],
                      "head_dim": hd, "experts": c.get("experts", np.zeros(n, np.int64)),
                      "top_k": c.get("top_k", np.zeros(n, np.int64))}
        static = {k: f[k] for k in ("family", "act", "gated", "qkv_bias", "o_bias", "mlp_bias",
                                    "tied", "positions", "window")}
        static["experts_on"] = self.moe
        return encode_batch(batch_cols, static, self.workload, self.name)

    def config(self, native: Mapping) -> LMConfig:
        """The :class:`LMConfig` of one candidate (its native dict)."""
        c = self._check_columns(self.to_columns([native]))
        layers = int(c["layers"][0])
        ffn = tuple(int(v) for v in c["ffn"][0][:layers]) if self.per_layer else int(c["ffn"][0])
        return self._config(layers, int(c["hidden"][0]), int(c["heads"][0]), int(c["kv_heads"][0]),
                            ffn, int(c["experts"][0]) if self.moe else 0,
                            int(c["top_k"][0]) if self.moe else 0)

    def to_columns(self, natives: Sequence) -> dict[str, np.ndarray]:
        if isinstance(natives, Mapping):
            natives = [natives]
        rows = {k: [] for k in self._columns}
        for i, nat in enumerate(natives):
            if not isinstance(nat, Mapping):
                raise NativeError(self.name, i, "native", f"expected a dict, got {type(nat).__name__}")
            extra = set(nat) - set(self._columns) - ({"kv_heads"} if not self.choices["kv_heads"] else set())
            if extra:
                raise NativeError(self.name, i, sorted(map(str, extra))[0], "not a field of this space")
            for k in self._columns:
                v = nat.get(k, nat.get("heads") if k == "kv_heads" and not self.choices[k] else None)
                if v is None:
                    raise NativeError(self.name, i, k, "missing")
                if k == "ffn" and self.per_layer:
                    v = self._per_layer(i, v, nat.get("layers"))
                elif isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                    raise NativeError(self.name, i, k, f"expected an integer, got {v!r}")
                rows[k].append(v)
        shape = {k: (len(rows[k]), self.max_layers) if k == "ffn" and self.per_layer else (len(rows[k]),)
                 for k in rows}
        cols = {k: np.array(v, dtype=np.int64).reshape(shape[k]) for k, v in rows.items()}
        self._check_columns(cols)
        return {k: v.astype(np.int32) for k, v in cols.items()}

    def _per_layer(self, i: int, v, layers) -> list:
        if not isinstance(v, (list, tuple)) or not all(isinstance(x, (int, np.integer))
                                                       and not isinstance(x, bool) for x in v):
            raise NativeError(self.name, i, "ffn", f"expected a list of per-layer sizes, got {v!r}")
        if len(v) not in (layers, self.max_layers) or not v:
            raise NativeError(self.name, i, "ffn", f"{len(v)} sizes: give one per layer ({layers}) "
                                                   f"or {self.max_layers}")
        return list(v) + [v[-1]] * (self.max_layers - len(v))

    def from_columns(self, cols: Mapping[str, np.ndarray]) -> list:
        keys = self._columns
        n = len(cols["layers"])
        return [{k: (np.asarray(cols[k][i]).tolist()) for k in keys} for i in range(n)]

    def arrow_columns(self, cols: Mapping[str, np.ndarray]) -> dict:
        import pyarrow as pa
        out = {}
        for k in self._columns:
            v = np.ascontiguousarray(cols[k], dtype=np.int32)
            out[k] = (pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), self.max_layers)
                      if v.ndim == 2 else pa.array(v))
        return out

    def describe(self) -> dict:
        d = super().describe()
        d["phase"] = self.phase
        return d

    def __repr__(self) -> str:
        p = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"LMSpace({self.name!r}, {p})"


def load_space(path, expected_name: Optional[str] = None, shipped: bool = False, **parameters):
    """A YAML space definition: a language-model space (``type:
    language_model``), a vision-transformer space (``type: vision_transformer``,
    :mod:`.autoformer`) or any other declarative space (``docs/declarative.md``).

    Raises :class:`SchemaError` naming the file and the offending key.
    """
    import yaml

    path = Path(path)
    try:
        with open(path) as f:
            definition = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        definition = None       # the declarative loader reports it, in its words
    if isinstance(definition, dict) and definition.get("type") == "vision_transformer":
        from .autoformer import transformer_from_definition
        try:
            space = transformer_from_definition(definition, os.fspath(path), **parameters)
        except (ValueError, TypeError) as exc:
            raise SchemaError(f"{path}", str(exc)) from None
        if expected_name is not None and space.name != expected_name:
            raise SchemaError(f"{path}: name", f"is {space.name!r}; shipped files must be named "
                                               f"after their space ({expected_name!r})")
        return space
    if not is_lm_definition(definition):
        return load_declarative(path, expected_name, shipped, **parameters)
    try:
        space = LMSpace(definition, source=os.fspath(path), shipped=shipped, **parameters)
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc.where}", exc.reason) from None
    except TypeError as exc:
        raise SchemaError(f"{path}: parameters", str(exc)) from None
    if expected_name is not None and space.name != expected_name:
        raise SchemaError(f"{path}: name", f"is {space.name!r}; shipped files must be named "
                                           f"after their space ({expected_name!r})")
    return space
