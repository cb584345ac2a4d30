"""Closed-form checks of every op under every base convention, memory by hand,
the record layout, batches, errors and parallel determinism."""
import re
from pathlib import Path

import joblib
import numpy as np
import pytest

import nasflops as nf
from nasflops import _core
from nasflops.spec import INPUT_FIELDS

N = 2           # batch size used by the per-op checks
C, H, W = 8, 10, 10


def test_dtype_mirrors_c_struct():
    pxd = (Path(nf.__file__).parent / "_core.pxd").read_text()
    body = pxd.split("cdef packed struct Layer:")[1].split("\n\n")[0]
    fields = re.findall(r"^\s+(int\d+_t|uint\d+_t)\s+(\w+)", body, flags=re.M)
    assert [name for _, name in fields] == list(nf.LAYER_DTYPE.names)
    for ctype, name in fields:
        bits = int(re.search(r"\d+", ctype).group())
        kind = "u" if ctype.startswith("u") else "i"
        assert nf.LAYER_DTYPE[name] == np.dtype(f"{kind}{bits // 8}"), name
    assert nf.LAYER_DTYPE.itemsize == _core.LAYER_SIZE
    assert len(INPUT_FIELDS) == nf.MAX_INPUTS


def test_issue_example_conv():
    net = nf.Net(16, 32, 32)
    net.conv(net.input, 32, 3, padding=1, bias=True)
    r = nf.score(net, convention="flops")
    assert (int(r["macs"][0]), int(r["params"][0]), int(r["ops"][0])) == (4_718_592, 4_640, 9_437_184)
    nb = nf.Net(16, 32, 32)
    nb.conv(nb.input, 32, 3, padding=1, bias=False)
    assert int(nf.score(nb, convention="flops")["ops"][0]) == 9_404_416
    assert int(nf.score(net, convention="fma2")["ops"][0]) == 2 * 4_718_592
    assert r.convention == "flops" and r.unit == "FLOPs"


def one(op_builder):
    """A net of the input C x H x W plus the layers ``op_builder`` adds."""
    net = nf.Net(C, H, W)
    op_builder(net, net.input)
    return net


def _last_layer(net, convention):
    t = nf.layer_table(net, convention=convention, batch_size=N)
    return t[-1]


# (name, builder, out shape, params, macs/sample, flops/sample)
# flops per sample are written out from the README's conventions table.
E = C * H * W  # input elements per sample
OPS = [
    ("conv_grouped_strided_bias", lambda n, x: n.conv(x, 16, 3, stride=2, padding=1, groups=2, bias=True),
     (16, 5, 5), 16 * 4 * 9 + 16, 5 * 5 * 16 * 4 * 9, 2 * (5 * 5 * 16 * 4 * 9) - 400 + 400),
    ("conv_depthwise", lambda n, x: n.conv(x, 8, 3, padding=1, groups=8),
     (8, 10, 10), 8 * 9, 100 * 8 * 9, 2 * 100 * 8 * 9 - 800),
    ("conv_dilated_rect", lambda n, x: n.conv(x, 4, (3, 1), padding=(2, 0), dilation=(2, 1)),
     (4, 10, 10), 4 * 8 * 3, 100 * 4 * 8 * 3, 2 * 100 * 4 * 8 * 3 - 400),
    ("linear_bias", lambda n, x: n.linear(n.flatten(x), 10),
     (10, 1, 1), 800 * 10 + 10, 800 * 10, (2 * 800 - 1) * 10 + 10),
    ("linear_nobias", lambda n, x: n.linear(n.global_avgpool(x), 5, bias=False),
     (5, 1, 1), 40, 40, E + (2 * 8 - 1) * 5),  # global pool: Hin*Win per channel
    ("batchnorm", lambda n, x: n.bn(x), (8, 10, 10), 16, 0, 4 * E),
    ("batchnorm_noaffine", lambda n, x: n.bn(x, affine=False), (8, 10, 10), 0, 0, 4 * E),
    ("layernorm", lambda n, x: n.layernorm(x), (8, 10, 10), 16, 0, 8 * E),
    ("layernorm_noaffine", lambda n, x: n.layernorm(x, affine=False), (8, 10, 10), 0, 0, 6 * E),
    ("scale", lambda n, x: n.scale(x), (8, 10, 10), 8, 0, E),
    ("scale_bias", lambda n, x: n.scale(x, bias=True), (8, 10, 10), 16, 0, 2 * E),
    *[(f"act_{a}", (lambda a: lambda n, x: n.act(x, a))(a), (8, 10, 10), 0, 0, E)
      for a in ("relu", "relu6", "hardswish", "hardsigmoid", "sigmoid", "silu", "gelu", "tanh")],
    ("act_inplace", lambda n, x: n.act(x, "relu", inplace=True), (8, 10, 10), 0, 0, E),
    ("maxpool", lambda n, x: n.maxpool(x, 3, 2, 1), (8, 5, 5), 0, 0, 9 * 8 * 25),
    ("maxpool_ceil", lambda n, x: n.maxpool(x, 3, 2, ceil_mode=True), (8, 5, 5), 0, 0, 9 * 8 * 25),
    ("maxpool_floor", lambda n, x: n.maxpool(x, 3, 2), (8, 4, 4), 0, 0, 9 * 8 * 16),
    ("avgpool", lambda n, x: n.avgpool(x, 2), (8, 5, 5), 0, 0, 4 * 8 * 25),
    ("global_avgpool", lambda n, x: n.global_avgpool(x), (8, 1, 1), 0, 0, E),
    # torch's adaptive windows on 10 -> 3: [0,4) [3,7) [6,10): 12 per axis
    ("adaptive_avgpool", lambda n, x: n.adaptive_avgpool(x, 3), (8, 3, 3), 0, 0, 8 * 12 * 12),
    ("add2", lambda n, x: n.add(x, n.identity(x)), (8, 10, 10), 0, 0, E),
    ("add3", lambda n, x: n.add(x, n.identity(x), n.zero(x)), (8, 10, 10), 0, 0, 2 * E),
    ("mul_gate", lambda n, x: n.mul(x, n.global_avgpool(x)), (8, 10, 10), 0, 0, E + E),
    ("concat", lambda n, x: n.concat(x, n.identity(x)), (16, 10, 10), 0, 0, 0),
    ("concat6", lambda n, x: n.concat(*([x] * 6)), (48, 10, 10), 0, 0, 0),
    ("softmax", lambda n, x: n.softmax(x), (8, 10, 10), 0, 0, 2 * E),
    ("flatten", lambda n, x: n.flatten(x), (800, 1, 1), 0, 0, 0),
    ("identity", lambda n, x: n.identity(x), (8, 10, 10), 0, 0, 0),
    ("dropout", lambda n, x: n.dropout(x), (8, 10, 10), 0, 0, 0),
    ("zero", lambda n, x: n.zero(x), (8, 10, 10), 0, 0, 0),
    ("channel_shuffle", lambda n, x: n.channel_shuffle(x, 4), (8, 10, 10), 0, 0, 0),
    ("slice", lambda n, x: n.slice(x, 2, 4), (4, 10, 10), 0, 0, 0),
    ("slice_step", lambda n, x: n.slice(x, 1, 3, step=3), (3, 10, 10), 0, 0, 0),
    *[(f"act_{a}", (lambda a: lambda n, x: n.act(x, a))(a), (8, 10, 10), 0, 0, E)
      for a in ("add_const", "sub_const", "mul_const", "div_const", "pow_const", "clamp", "sqrt")],
    ("pad", lambda n, x: n.pad(x, (12, 13, 11), (2, 1, 0)), (12, 13, 11), 0, 0, 0),
    ("crop", lambda n, x: n.crop(x, (1, 0), (3, 5), (3, 2)), (8, 3, 5), 0, 0, 0),
    ("sub_gate", lambda n, x: n.sub(x, n.mean(x, channels=True)), (8, 10, 10), 0, 0, E + E),
    ("div_gate", lambda n, x: n.div(x, n.global_avgpool(x)), (8, 10, 10), 0, 0, E + E),
    ("copy", lambda n, x: n.copy(x), (8, 10, 10), 0, 0, 0),
    ("log_softmax", lambda n, x: n.log_softmax(x), (8, 10, 10), 0, 0, 2 * E),
    ("mean_channels", lambda n, x: n.mean(x, channels=True), (1, 10, 10), 0, 0, E),
    ("mean_all", lambda n, x: n.mean(x, True, True, True), (1, 1, 1), 0, 0, E),
    ("mean_height", lambda n, x: n.mean(x, height=True), (8, 1, 10), 0, 0, E),
    ("concat_height", lambda n, x: n.concat(x, n.crop(x, 0, (4, 10)), axis=1), (8, 14, 10), 0, 0, 0),
    ("concat_width6", lambda n, x: n.concat(*([x] * 6), axis=2), (8, 10, 60), 0, 0, 0),
]


@pytest.mark.parametrize("name,build,shape,params,macs,flops", OPS, ids=[o[0] for o in OPS])
def test_op_closed_form(name, build, shape, params, macs, flops):
    net = one(build)
    total_flops = int(nf.score(net, convention="flops", batch_size=N)["ops"][0])
    r = nf.score(net, convention="macs", batch_size=N)
    last = _last_layer(net, "flops")
    assert tuple(int(v) for v in (last["channels"], last["height"], last["width"])) == shape
    assert int(r["params"][0]) == params
    assert int(r["macs"][0]) == N * macs
    assert int(r["ops"][0]) == N * macs
    assert total_flops == N * flops
    assert int(nf.score(net, convention="fma2", batch_size=N)["ops"][0]) == 2 * N * macs


def test_memory_by_hand():
    # input 1x4x4; conv1x1 -> 2ch; in-place relu; conv1x1 -> 2ch; add
    net = nf.Net(1, 4, 4)
    a = net.conv(net.input, 2, 1)
    b = net.act(a, "relu", inplace=True)
    c = net.conv(b, 2, 1)
    net.add(b, c)
    x = 4  # fp32 activations
    inp, t = 16 * x, 32 * x             # bytes of the input and of each 2x4x4 tensor
    r = nf.score(net, convention="macs")[0]
    # live: step0 {in}; step1 {in, a}; step2 in-place; step3 {a, c}; step4 {a, c, add}
    assert int(r["peak_act_bytes"]) == max(inp, inp + t, 2 * t, 3 * t) == 3 * t
    assert int(r["act_bytes"]) == 4 * t            # conv, relu (writes), conv, add
    assert int(r["write_bytes"]) == 4 * t
    weights = (2 * 1 + 2 * 2) * 4
    assert int(r["weight_bytes"]) == weights
    assert int(r["read_bytes"]) == (inp + 2 * 4) + t + (t + 4 * 4) + 2 * t
    half = nf.score(net, convention="macs", batch_size=3, weight_dtype="int8", act_dtype="fp16")[0]
    assert int(half["peak_act_bytes"]) == 3 * (3 * t) // 2
    assert int(half["weight_bytes"]) == weights // 4
    assert int(half["read_bytes"]) == 3 * (inp + 4 * t) // 2 + 6  # activations x3 x half, weights 6 B
    live = nf.layer_table(net)["live_bytes"].tolist()
    assert live == [inp, inp + t, t, 2 * t, 3 * t]


def test_views_allocate_nothing():
    net = nf.Net(4, 8, 8)
    f = net.flatten(net.identity(net.dropout(net.slice(net.input, 0, 4))))
    net.linear(f, 3)
    r = nf.score(net)[0]
    # only the input (256 floats) and the linear output (3 floats) ever exist
    assert int(r["peak_act_bytes"]) == (256 + 3) * 4
    assert int(r["act_bytes"]) == 3 * 4


def test_crop_is_a_view_pad_and_mean_allocate():
    # 2x4x4 input; crop rows/cols 1.. (a view); pad back to 3x5x5 (new); mean over C
    net = nf.Net(2, 4, 4)
    c = net.crop(net.input, (1, 1), (3, 3))
    p = net.pad(c, (3, 5, 5), (1, 1, 1))
    net.mean(p, channels=True)
    x = 4
    inp, pad, mean = 32 * x, 75 * x, 25 * x
    r = nf.score(net)[0]
    assert nf.layer_table(net)["live_bytes"].tolist() == [inp, inp, inp + pad, pad + mean]
    assert int(r["act_bytes"]) == pad + mean
    # the pad reads the 18 cropped elements, the mean the 75 padded ones
    assert int(r["read_bytes"]) == 18 * x + pad
    assert int(r["peak_act_bytes"]) == inp + pad


def test_inplace_sub_allocates_nothing():
    net = nf.Net(2, 4, 4)
    a = net.conv(net.input, 2, 1)
    net.sub(a, net.mean(a, channels=True), inplace=True)
    t, m = 32 * 4, 16 * 4
    assert nf.layer_table(net)["live_bytes"].tolist() == [t, 2 * t, t + m, t + m]
    assert int(nf.score(net)[0]["act_bytes"]) == t + m + t


def test_inplace_add_allocates_nothing():
    net = nf.Net(2, 4, 4)
    a = net.conv(net.input, 2, 1)
    net.add(a, net.input, inplace=True)
    t = 32 * 4
    r = nf.score(net)[0]
    assert nf.layer_table(net)["live_bytes"].tolist() == [t, 2 * t, 2 * t]
    assert int(r["peak_act_bytes"]) == 2 * t
    assert int(r["act_bytes"]) == 2 * t and int(r["read_bytes"]) == t + 4 * 4 + 2 * t


def test_chained_concat_costs_one_concat():
    # concat of 6 tensors = 2 records; the chain allocates, reads and writes
    # what one torch.cat of the 6 does
    net = nf.Net(1, 2, 2)
    xs = [net.conv(net.input, 1, 1) for _ in range(6)]
    net.concat(*xs)
    assert len(net) == 1 + 6 + 2
    t = 4 * 4  # one 1x2x2 fp32 tensor
    r = nf.score(net)[0]
    tab = nf.layer_table(net)
    assert int(tab["act_bytes"][-2:].sum()) == 6 * t and int(tab["write_bytes"][-2:].sum()) == 6 * t
    assert int(tab["read_bytes"][-2:].sum()) == 6 * t
    # the input dies after the last branch; then 6 branches + the 6-wide result
    # are alive together, as around one torch.cat
    assert int(r["peak_act_bytes"]) == 6 * t + 6 * t
    assert nf.layer_table(net)["live_bytes"].tolist()[-2:] == [6 * t + 4 * t, 6 * t + 6 * t]


def test_dead_branch_freed_after_itself():
    net = nf.Net(1, 2, 2)
    net.conv(net.input, 4, 1)          # a dead end
    net.conv(net.input, 1, 1)
    live = nf.layer_table(net)["live_bytes"].tolist()
    assert live == [16, 16 + 64, 16 + 16]


def test_latency_roofline():
    net = nf.Net(16, 32, 32)
    net.conv(net.input, 32, 3, padding=1)
    dev = nf.Device("toy", peak_ops_per_s=1e9, bytes_per_s=1e6)
    r = nf.score(net, device=dev)[0]
    t = nf.layer_table(net, device=dev)
    conv = t[1]
    expect = max(conv["ops"] / 1e9, (conv["read_bytes"] + conv["write_bytes"]) / 1e6)
    assert r["latency_s"] == pytest.approx(expect, rel=1e-12)
    assert t["latency_s"].sum() == pytest.approx(r["latency_s"], rel=1e-12)


def test_specbatch_indexing_and_concat():
    nets = [nf.Net(3, 8 + i, 8) for i in range(5)]
    for i, n in enumerate(nets):
        for _ in range(i):
            n.conv(n.last, 4, 1)
    b = nf.SpecBatch.from_list(nets)
    assert len(b) == 5 and b.lengths.tolist() == [1, 2, 3, 4, 5]
    assert np.array_equal(b[3], nets[3].records)
    assert np.array_equal(b[-1], nets[4].records)
    sub = b[1:4]
    assert sub.lengths.tolist() == [2, 3, 4] and np.array_equal(sub[0], nets[1].records)
    taken = b.take([4, 0, 2])
    assert [len(a) for a in taken] == [5, 1, 3]
    assert np.array_equal(taken[0], nets[4].records)
    both = nf.SpecBatch.concat([b[:2], b[2:]])
    assert np.array_equal(both.records, b.records) and np.array_equal(both.offsets, b.offsets)
    assert np.array_equal(nf.score(b), nf.score(both))
    with pytest.raises(IndexError):
        b[5]
    with pytest.raises(ValueError, match="offsets"):
        nf.SpecBatch(b.records, np.array([0, 3, 2, b.n_layers]))
    with pytest.raises(TypeError, match="LAYER_DTYPE"):
        nf.SpecBatch(np.zeros(3), np.array([0, 3]))


def _random_batch(n, seed):
    rng = np.random.default_rng(seed)
    nets = []
    for i in range(n):
        net = nf.Net(3, int(rng.integers(8, 40)), int(rng.integers(8, 40)))
        x = net.input
        for _ in range(int(rng.integers(1, 12))):
            y = net.conv(x, int(rng.integers(1, 5)) * 4, int(rng.choice([1, 3])), padding=1)
            x = net.act(net.bn(y), "relu")
        nets.append(net)
    return nf.SpecBatch.from_list(nets)


def test_results_independent_of_jobs_chunks_and_backend():
    b = _random_batch(300, 0)
    ref = nf.score(b, convention="flops", batch_size=4)
    for n_jobs, chunk in [(2, 1), (2, 7), (-1, 64), (1, 5)]:
        assert np.array_equal(nf.score(b, convention="flops", batch_size=4, n_jobs=n_jobs,
                                       chunk_size=chunk), ref)
    with joblib.parallel_config(backend="loky", n_jobs=2):
        assert np.array_equal(nf.score(b, convention="flops", batch_size=4, n_jobs=None,
                                       chunk_size=50), ref)


def test_scores_carry_convention():
    r = nf.score(_random_batch(4, 1), convention="fma2", batch_size=2, act_dtype="bf16")
    assert (r.convention, r.unit, r.batch_size, r.act_dtype) == ("fma2", "FLOPs", 2, "bf16")
    assert r[1:].convention == "fma2"
    assert r.ok.all()


def test_bad_arguments():
    net = one(lambda n, x: n.conv(x, 4, 1))
    with pytest.raises(ValueError, match="unknown convention 'gflops'"):
        nf.score(net, convention="gflops")
    with pytest.raises(ValueError, match="act_dtype"):
        nf.score(net, act_dtype="fp12")
    with pytest.raises(ValueError, match="batch_size"):
        nf.score(net, batch_size=0)
    with pytest.raises(TypeError):
        nf.score("resnet50")


def test_register_convention_is_a_row():
    conv = nf.register_convention("test-double-relu", "FLOPs", "test only",
                                  {"act:relu": {"out": 2}, "conv2d": {"mac": 1}})
    try:
        net = one(lambda n, x: n.act(n.conv(x, 4, 1), "relu"))
        assert int(nf.score(net, convention=conv)["ops"][0]) == 4 * 100 * 8 + 2 * 400
        with pytest.raises(ValueError, match="unknown term"):
            nf.register_convention("bad", "FLOPs", "", {"relu": {"muls": 1}})
    finally:
        nf.CONVENTIONS.pop("test-double-relu")


def test_nothing_but_the_bridge_imports_torch():
    # torch is an optional extra: the whole package but nasflops.torch_bridge works without it
    import subprocess
    import sys
    code = ("import sys, nasflops as nf, nasflops.cli, nasflops.plots\n"
            "for s in nf.list_spaces(): nf.score(nf.get_space(s['name']).sample(3, seed=0))\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
