"""``from_torch`` on transformers: torchvision's ViT as it comes, hand-written
token code (scaled-dot-product attention, matmul / @ / bmm / einsum, heads
split with reshape / permute / unbind), held to the zoo's records, to the
real thop / ptflops / fvcore and to torch's FlopCounterMode."""
import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import nasflops as nf  # noqa: E402
from tests.counting import n_params  # noqa: E402
from nasflops.search_spaces import language_models as lm  # noqa: E402
from nasflops.search_spaces import vision_transformers as vits  # noqa: E402
from nasflops.search_spaces import zoo  # noqa: E402
from nasflops.torch_bridge import UnsupportedOpsError, from_torch, translate  # noqa: E402
from nasflops.torch_bridge.reference import REFERENCE_TOOLS  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CONVENTIONS = ("macs", "flops", "fma2", "thop", "ptflops", "fvcore")
TOOLS = ("thop", "ptflops", "fvcore")


def ops(recs, convention):
    return int(nf.score(recs, convention=convention)["ops"][0])


def params(recs):
    return int(nf.score(recs)["params"][0])


def assert_same_counts(recs, want):
    for conv in CONVENTIONS:
        assert ops(recs, conv) == ops(want, conv), conv
    assert params(recs) == params(want)


# --------------------------------------------------------- torchvision ViT
@pytest.fixture(scope="module")
def tv_models(torchvision):
    from tests.test_transformers import torchvision_model
    return torchvision_model


@pytest.mark.parametrize("name", ["vit_b_32", "vit_b_16"])
def test_torchvision_vit_is_the_zoo_record_for_record(name, tv_models):
    """The zoo's ViT (tests/test_transformers.py holds it to the real tools
    on these very models) is what from_torch reads from torchvision's code:
    every record equal, so every convention and memory metric."""
    model = tv_models(name)
    t = translate(model, (3, 224, 224))
    want = zoo.build(name)
    assert t.records.tobytes() == want.tobytes()
    assert_same_counts(t.records, want)
    assert params(t.records) == t.params_run == t.params_total == n_params(model)
    assert t.names[1] == "conv_proj" and t.names[-1] == "heads.head"


#: (image, patch, layers, heads, hidden, mlp): even and odd heads (the MHA
#: fast path exists for even heads only), patch grids 2 x 2 and 4 x 4
SMALL_VITS = [(32, 16, 2, 2, 16, 32), (64, 16, 2, 3, 24, 40), (48, 8, 1, 4, 32, 64)]


@pytest.mark.parametrize("cfg", SMALL_VITS)
def test_small_torchvision_vits_equal_the_zoo_and_the_real_tools(cfg, torchvision):
    image, patch, layers, heads, hidden, mlp = cfg
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image, patch, layers, heads, hidden, mlp,
                                                 num_classes=10).eval()
    shape = (3, image, image)
    recs = from_torch(model, shape)
    want = vits._vit(patch, layers, heads, hidden, mlp, 10, image).records
    assert recs.tobytes() == want.tobytes()
    assert from_torch(model, shape, batch_size=3).tobytes() == want.tobytes()   # per sample
    assert params(recs) == n_params(model)
    for tool in TOOLS:
        assert ops(recs, tool) == REFERENCE_TOOLS[tool](model, shape), tool


# --------------------------------------------------------- torchvision Swin
def test_torchvision_swin_t_counts_what_the_zoo_counts(torchvision):
    """swin_t as it comes (functional linears, Tensor.matmul, roll, F.pad,
    the shift mask, the relative-position bias gathered and added, patch
    merging): every convention and params equal the zoo's Swin-T, which
    tests/test_transformers.py holds to the real tools on the real model.
    On the meta device: only shapes are computed."""
    with torch.device("meta"):
        model = torchvision.models.swin_t().eval()
    t = translate(model, (3, 224, 224))
    assert_same_counts(t.records, zoo.build("swin_t"))
    assert params(t.records) == t.params_total == n_params(model) == vits.PUBLISHED["swin_t"][1]
    ops_ = [nf.spec.op_name(o) for o in t.records["op"]]
    assert ops_.count("patch_merge") == 3 and ops_.count("matmul") == 2 * 12


def test_small_torchvision_swin_equals_the_real_tools(torchvision):
    torch.manual_seed(0)
    model = torchvision.models.SwinTransformer([4, 4], 16, [2, 2], [1, 2], [7, 7],
                                               num_classes=10).eval()
    shape = (3, 224, 224)
    recs = from_torch(model, shape)
    assert_same_counts(recs, vits._swin(16, (2, 2), (1, 2), 10, 224).records)
    assert from_torch(model, shape, batch_size=2).tobytes() == recs.tobytes()   # per sample
    assert params(recs) == n_params(model)
    for tool in TOOLS:
        assert ops(recs, tool) == REFERENCE_TOOLS[tool](model, shape), tool


# ------------------------------------------------------ hand-written token code

class Attention(nn.Module):
    """timm-style attention (qkv linear, reshape, permute, unbind); ``how``
    picks how the two products are written."""
    def __init__(self, dim, heads, how="at"):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.heads, self.how = heads, how
        self.scale = (dim // heads) ** -0.5

    def forward(self, x):
        B, N, C = x.shape
        h = self.heads
        if self.how == "chunk":           # chunk on the channels, heads per piece
            q, k, v = (t.view(B, N, h, C // h).transpose(1, 2)
                       for t in self.qkv(x).chunk(3, dim=-1))
            y = F.scaled_dot_product_attention(q, k, v)
            return self.proj(y.transpose(1, 2).flatten(2))
        qkv = self.qkv(x).reshape(B, N, 3, h, C // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.how == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v)
        elif self.how == "at":
            a = (q @ k.transpose(-2, -1)) * self.scale
            y = a.softmax(dim=-1) @ v
        elif self.how == "matmul":
            a = torch.matmul(q * self.scale, k.transpose(-2, -1))
            y = torch.matmul(F.softmax(a, dim=-1), v)
        elif self.how == "einsum":
            a = torch.einsum("bhqd,bhkd->bhqk", q, k) * self.scale
            y = torch.einsum("bhqk,bhkd->bhqd", a.softmax(-1), v)
        elif self.how == "bmm":
            q, k, v = (t.reshape(B * h, N, C // h) for t in (q, k, v))
            a = torch.bmm(q, k.transpose(1, 2)) * self.scale
            y = torch.bmm(torch.softmax(a, -1), v).reshape(B, h, N, C // h)
        elif self.how == "einsum3":
            q, k, v = (t.reshape(B * h, N, C // h) for t in (q, k, v))
            a = torch.einsum("bij,bkj->bik", q, k) * self.scale
            y = torch.einsum("bij,bjk->bik", a.softmax(-1), v).reshape(B, h, N, C // h)
        return self.proj(y.transpose(1, 2).reshape(B, N, C))


class Block(nn.Module):
    def __init__(self, dim, heads, how):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, how)
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class TinyViT(nn.Module):
    """A hand-written ViT: patch conv, flatten(2).transpose(1, 2), class token,
    position embedding, blocks, x[:, 0] or a mean over the tokens."""
    def __init__(self, how="at", dim=32, heads=4, depth=2, patch=8, image=32, pool="cls"):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, patch)
        n = (image // patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, n + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, how) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)
        self.pool = pool

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos
        x = self.norm(self.blocks(x))
        x = x[:, 0] if self.pool == "cls" else x.mean(dim=1)
        return self.head(x)


class SeqFirst(nn.Module):
    """nn.MultiheadAttention with batch_first=False between transposes."""
    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 8, 8)
        self.attn = nn.MultiheadAttention(dim, heads)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        x = self.embed(x).flatten(2).permute(2, 0, 1)       # L x N x C
        x = x + self.attn(x, x, x, need_weights=False)[0]
        return self.head(x.mean(0))


#: every spelling of the two attention products
SPELLINGS = ["at", "sdpa", "matmul", "einsum", "bmm", "einsum3", "chunk"]


def _fvcore_einsum(recs, names):
    """fvcore counts an einsum outside its two special-cased equations from
    ``np.einsum_path``'s printout, ``%.3e``: 4 significant digits.  The
    count fvcore prints for each einsum record minus its exact MACs."""
    table = nf.layer_table(recs)
    out = 0
    for i, name in enumerate(names):
        if name.endswith(":einsum"):
            mac = int(table["macs"][i])
            out += int(float(f"{2 * mac:.3e}") // 2) - mac
    return out


@pytest.mark.parametrize("pool", ["cls", "mean"])
@pytest.mark.parametrize("how", SPELLINGS)
def test_token_code_equals_the_real_tools(how, pool, torchvision):
    """A hand-written ViT (patch conv, flatten(2).transpose(1, 2), class
    token, position embedding, timm-style attention) with the attention
    written each way: exact against thop, ptflops, fvcore and FlopCounterMode
    (the math backend: CPU's fused SDPA has no FLOP formula)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    torch.manual_seed(0)
    model = TinyViT(how, pool=pool).eval()
    shape = (3, 32, 32)
    t = translate(model, shape)
    recs = t.records
    assert params(recs) == t.params_total == n_params(model)
    assert ops(recs, "thop") == REFERENCE_TOOLS["thop"](model, shape)
    assert ops(recs, "ptflops") == REFERENCE_TOOLS["ptflops"](model, shape)
    quirk = _fvcore_einsum(recs, t.names) if how.startswith("einsum") else 0
    assert ops(recs, "fvcore") + quirk == REFERENCE_TOOLS["fvcore"](model, shape)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, \
            torch.no_grad():
        model(torch.randn((1,) + shape))
    assert ops(recs, "fma2") == counter.get_total_flops() == 2 * ops(recs, "macs")
    # the spellings differ in how tools see them, never in what is computed
    ref = from_torch(TinyViT("at", pool=pool).eval(), shape)
    for conv in ("macs", "fma2"):
        assert ops(recs, conv) == ops(ref, conv)


@pytest.mark.parametrize("how", SPELLINGS)
def test_records_are_per_sample(how):
    """The batch folded into heads or windows (``B*H x L x d``) is divided
    out: the same counts per sample at batch 1 and 3."""
    model = TinyViT(how).eval()
    one, three = (from_torch(model, (3, 32, 32), batch_size=n) for n in (1, 3))
    for conv in CONVENTIONS:
        assert ops(one, conv) == ops(three, conv), conv


def test_records_name_the_code():
    """One record per op; views cost no record until a reader needs a layout."""
    t = translate(TinyViT("sdpa", depth=1).eval(), (3, 32, 32))
    ops_ = [nf.spec.op_name(o) for o in t.records["op"]]
    assert ops_[:5] == ["input", "conv2d", "tokens", "prepend", "param_add"]
    i = ops_.index("attention")
    assert t.names[i] == "blocks.0.attn:scaled_dot_product_attention"
    assert ops_[i - 3:i] == ["slice"] * 3                        # unbind of q, k, v
    assert nf.Call(int(t.records["call"][i])) == nf.Call.FUNCTION


def test_multihead_attention_sequence_first():
    """nn.MultiheadAttention(batch_first=False) on L x N x C: one mha record."""
    model = SeqFirst().eval()
    shape = (3, 32, 32)
    for n in (1, 2):
        t = translate(model, shape, batch_size=n)
        assert [nf.spec.op_name(o) for o in t.records["op"]] == [
            "input", "conv2d", "tokens", "mha", "add", "mean", "linear"]
    assert params(t.records) == n_params(model)
    for tool in TOOLS:
        assert ops(t.records, tool) == REFERENCE_TOOLS[tool](model, shape), tool


def test_baddbmm_is_a_product_and_an_add():
    """``torch.baddbmm(bias, q, k^T)``: FlopCounterMode counts the product."""
    from torch.utils.flop_counter import FlopCounterMode

    class Scores(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Conv2d(3, 16, 8, 8)
            self.bias = nn.Parameter(torch.zeros(16, 16))

        def forward(self, x):
            x = self.embed(x).flatten(2).transpose(1, 2)
            return torch.baddbmm(self.bias, x, x.transpose(1, 2)).softmax(-1)

    model = Scores().eval()
    recs = from_torch(model, (3, 32, 32))
    assert [nf.spec.op_name(o) for o in recs["op"]][-3:] == ["matmul", "param_add", "softmax"]
    assert params(recs) == n_params(model)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert ops(recs, "fma2") == counter.get_total_flops()


def test_untranslatable_token_code_names_the_line():
    class Rolled(TinyViT):
        def forward(self, x):
            x = self.embed(x).flatten(2).transpose(1, 2)
            x = torch.cummax(x, dim=1).values
            x = torch.cumsum(self.blocks(x), dim=1)
            return self.head(x[:, 0])

    with pytest.raises(UnsupportedOpsError) as e:
        from_torch(Rolled("sdpa").eval(), (3, 32, 32))
    msg = str(e.value)
    assert [o.target for o in e.value.offenders] == ["torch.cummax", "torch.cumsum"]
    assert "test_from_torch_transformers.py:" in msg and "module_map" in msg


# ------------------------------------------------- Hugging Face decoders
from tests.test_language_models import MODEL_CLASS, hf, hf_config, lm_config  # noqa: E402,F401

SEQ = 16
#: tiny configs of every dense family: GQA, a tied head, Qwen2's q/k/v biases,
#: GPT-2's Conv1D (torch.addmm), learned positions and tied head
DECODERS = {
    "llama": ("Llama", dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
                            tie_word_embeddings=False)),
    "llama-mha-tied": ("Llama", dict(vocab_size=1000, hidden_size=96, num_hidden_layers=1,
                                     num_attention_heads=3, num_key_value_heads=3,
                                     intermediate_size=160, tie_word_embeddings=True)),
    "mistral": ("Mistral", dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=1,
                                intermediate_size=128, tie_word_embeddings=False)),
    "qwen2-tied": ("Qwen2", dict(vocab_size=1000, hidden_size=128, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2,
                                 intermediate_size=256, tie_word_embeddings=True)),
    # gelu_new (GPT-2's): GELU's tanh approximation written out, one gelu
    "gpt2": ("GPT2", dict(vocab_size=1000, n_positions=64, n_embd=64, n_layer=2, n_head=4,
                          activation_function="gelu_new")),
}


def hf_model(hf, name, attn):
    kind, kw = DECODERS[name]
    torch.manual_seed(0)
    cfg = hf_config(hf, kind, kw, attn)
    return getattr(hf, MODEL_CLASS[kind])(cfg).eval(), lm_config(kind, cfg)


@pytest.mark.parametrize("name", list(DECODERS))
def test_hf_decoders_with_sdpa_are_the_builders_records(name, hf):
    """transformers' decoders as they come (sdpa attention, a DynamicCache):
    every record the language-model builder writes for the same config
    (embedding, RMSNorm, rope fused from x * cos + rotate_half(x) * sin,
    kv_cache, GQA attention, SwiGLU, tied head), so every forward count and
    params equal; GPT-2's Conv1D is torch.addmm, a method call the hook
    tools do not see as nn.Linear, and its gelu_new written out is one gelu."""
    model, cfg = hf_model(hf, name, "sdpa")
    t = translate(model, (SEQ,))
    want = lm.build(cfg, "prefill", seq_len=SEQ, logits="all")
    convs = ("macs", "flops", "fma2", "fvcore") if name == "gpt2" else CONVENTIONS
    for conv in convs:
        assert ops(t.records, conv) == ops(want, conv), conv
    assert params(t.records) == params(want) == t.params_total == n_params(model)
    if name != "gpt2":        # GPT-2's dropout modules are records the builder leaves out
        mine, act = t.records.copy(), t.records["op"] == nf.Op.ACT
        # transformers' act_fn module calls F.silu, which the builder writes
        # as a module call: the same count under every convention
        assert (mine["call"][act] == int(nf.Call.FUNCTION)).all()
        mine["call"][act] = want["call"][act]
        assert mine.tobytes() == want.tobytes()


@pytest.mark.parametrize("name", list(DECODERS))
def test_hf_decoders_eager_equal_flop_counter_mode(name, hf):
    """Eager attention (matmul, scale, mask, softmax, matmul; repeat_kv of
    GQA as the copy it is): fma2 equals FlopCounterMode on the real model,
    and the builder's multiply-accumulates."""
    from torch.utils.flop_counter import FlopCounterMode
    model, cfg = hf_model(hf, name, "eager")
    t = translate(model, (SEQ,), batch_size=2)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(2, SEQ, dtype=torch.long))
    assert int(nf.score(t.records, convention="fma2", batch_size=2)["ops"][0]) == \
        counter.get_total_flops()
    want = lm.build(cfg, "prefill", seq_len=SEQ, logits="all")
    assert ops(t.records, "macs") == ops(want, "macs")
    assert params(t.records) == n_params(model)


@pytest.mark.parametrize("name", ["llama-3-8b", "qwen2.5-0.5b", "gpt2"])
def test_full_size_zoo_decoders_on_the_meta_device(name, hf):
    """Llama-3-8B (GQA), Qwen2.5-0.5B (biases, tied head) and GPT-2 from
    their configs on the meta device, a prompt of 1,024 tokens: the zoo's
    counts and parameters (8,030,261,248 / 494,032,768 / 124,439,808)."""
    from tests.test_language_models import HF_CONFIGS
    kind, kw = HF_CONFIGS[name]
    with torch.device("meta"):
        model = getattr(hf, MODEL_CLASS[kind])(hf_config(hf, kind, kw, "sdpa")).eval()
    recs = from_torch(model, (1024,))
    want = lm.build(name, "prefill", seq_len=1024, logits="all")
    for conv in ("macs", "flops", "fma2", "fvcore"):
        assert ops(recs, conv) == ops(want, conv), conv
    assert params(recs) == params(want) == n_params(model)


def test_mixture_of_experts_names_its_router(hf):
    """Routing (torch.topk) has no op: one error, with the module path, the
    line of transformers' source and the module_map hint."""
    cfg = hf.MixtralConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
                           num_local_experts=4, num_experts_per_tok=2)
    cfg._attn_implementation = "sdpa"
    with pytest.raises(UnsupportedOpsError) as e:
        from_torch(hf.MixtralForCausalLM(cfg).eval(), (SEQ,))
    (first,) = e.value.offenders
    assert first.name == "model.layers.0.mlp.gate:topk" and first.target == "torch.topk"
    assert first.where.split(":")[0].endswith("modeling_mixtral.py")
    assert "module_map" in str(e.value)


# ------------------------------------------------- a hand-written decoder

class CausalSelfAttention(nn.Module):
    """A decoder's attention written by hand, nanoGPT-style: one qkv linear,
    split, heads by view + transpose, a registered causal mask."""
    def __init__(self, dim, heads, ctx_len):
        super().__init__()
        self.c_attn, self.c_proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.heads, self.dim = heads, dim
        mask = torch.tril(torch.ones(ctx_len, ctx_len)).view(1, 1, ctx_len, ctx_len)
        self.register_buffer("bias", mask)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.dim, dim=2)
        k = k.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        q = q.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class TinyGPT(nn.Module):
    """Token and position embeddings, pre-norm blocks, a tied head on the
    last position (``x[:, [-1], :]``)."""
    def __init__(self, vocab=500, dim=64, heads=4, layers=2, ctx_len=32):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, dim), nn.Embedding(ctx_len, dim)
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            self.blocks.append(nn.ModuleDict(dict(
                ln_1=nn.LayerNorm(dim), attn=CausalSelfAttention(dim, heads, ctx_len),
                ln_2=nn.LayerNorm(dim), fc=nn.Linear(dim, 4 * dim), gelu=nn.GELU(),
                proj=nn.Linear(4 * dim, dim))))
        self.ln_f = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.wte.weight = self.lm_head.weight          # tied

    def forward(self, idx):
        pos = torch.arange(0, idx.size(1), dtype=torch.long, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for b in self.blocks:
            x = x + b["attn"](b["ln_1"](x))
            x = x + b["proj"](b["gelu"](b["fc"](b["ln_2"](x))))
        return self.lm_head(self.ln_f(x)[:, [-1], :])


@pytest.mark.parametrize("batch", [1, 2])
def test_hand_written_decoder_equals_flop_counter_mode(batch):
    """nanoGPT-style code: split, view + transpose, @, masked_fill with a
    registered causal mask, F.softmax, a tied head on the last token."""
    from torch.utils.flop_counter import FlopCounterMode
    torch.manual_seed(0)
    model = TinyGPT().eval()
    t = translate(model, (16,), batch_size=batch)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(batch, 16, dtype=torch.long))
    assert int(nf.score(t.records, convention="fma2", batch_size=batch)["ops"][0]) == \
        counter.get_total_flops()
    assert params(t.records) == t.params_total == n_params(model)      # the tied head once
    ops_ = [nf.spec.op_name(o) for o in t.records["op"]]
    assert ops_[:3] == ["input", "embedding", "param_add"] and ops_[-2:] == ["slice", "linear"]
    assert ops_.count("matmul") == 4 and int(t.records["flags"][-1]) & int(nf.Flag.TIED)
