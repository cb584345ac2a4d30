"""NAS-Bench-201 space and the ``nb201`` convention.

References: the benchmark's published figures (Dong & Yang, ICLR 2020) and
its own code, ``xautodl`` (``TinyNetwork`` counted by ``get_model_infos``).
"""
import numpy as np
import pytest

import nasflops as nf
from nasflops.search_spaces import NativeError, get_space
from nasflops.search_spaces.columns import SAMPLE_BLOCK, concat_columns
from nasflops.search_spaces.nb201 import DATASETS, EDGES, OPS, SIZE, NB201Space

EXAMPLE = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
           "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
N_REF = 200     # architectures checked against xautodl per dataset


@pytest.fixture(scope="module")
def cifar10():
    return get_space("nb201", dataset="cifar10")


@pytest.fixture(scope="module")
def cifar10_scores(cifar10):
    return nf.score(cifar10.enumerate(), convention="nb201")


# ---------------------------------------------------------------- published
def test_published_example(cifar10):
    r = nf.score(cifar10.encode([EXAMPLE]), convention="nb201")
    # NAS-Bench-201: 113.95137 MFLOPs, 0.802426 M params
    assert int(r["ops"][0]) == 113_951_370
    assert int(r["params"][0]) == 802_426
    assert r.convention == "nb201"


def test_published_cifar10_range(cifar10_scores):
    r = cifar10_scores
    assert len(r) == SIZE and r.ok.all()
    # published: 7.78 .. 220.11 MFLOPs, 0.073 .. 1.53 M params, figures cut
    # (not rounded) to the digits shown: compare in units of the last digit
    lo, hi = int(r["ops"].min()), int(r["ops"].max())
    assert (lo // 10_000, hi // 10_000) == (778, 22011)
    lo, hi = int(r["params"].min()), int(r["params"].max())
    assert (lo // 1_000, hi // 10_000) == (73, 153)


def test_all_none_by_hand(cifar10, cifar10_scores):
    """Cells of ``none`` only: the skeleton alone, counted by hand."""
    r = nf.score(cifar10.encode([[0] * 6]), convention="nb201")
    stem = 32 * 32 * 16 * 3 * 9
    red1 = 16 * 16 * 32 * (16 * 9 + 32 * 9 + 16)     # conv_a, conv_b, 1x1 shortcut
    red2 = 8 * 8 * 64 * (32 * 9 + 64 * 9 + 32)
    fc = 64 * 10 + 10                                 # weights + bias adds
    assert int(r["ops"][0]) == stem + red1 + red2 + fc == int(cifar10_scores["ops"].min())
    params = (432 + 32) + (16 * 32 * 9 + 64 + 32 * 32 * 9 + 64 + 16 * 32) \
        + (32 * 64 * 9 + 128 + 64 * 64 * 9 + 128 + 32 * 64) + 128 + 650
    assert int(r["params"][0]) == params == int(cifar10_scores["params"].min())


# ----------------------------------------------------------------- xautodl
def _xautodl_counts(arch: str, dataset: str):
    from xautodl.models import get_cell_based_tiny_net
    from xautodl.utils.flop_benchmark import (add_flops_counting_methods,
                                              compute_average_flops_cost,
                                              get_model_infos, remove_hook_function)
    import torch
    c, h, w, classes = DATASETS[dataset]
    model = get_cell_based_tiny_net({"name": "infer.tiny", "C": 16, "N": 5,
                                     "arch_str": arch, "num_classes": classes})
    mflops, mparams = get_model_infos(model, (1, c, h, w))
    # the exact integer the published float was divided from
    add_flops_counting_methods(model)
    with torch.no_grad():
        model(torch.zeros(1, c, h, w))
    flops = compute_average_flops_cost(model)
    model.apply(remove_hook_function)
    numel = sum(p.numel() for p in model.parameters())
    return mflops, mparams, flops, numel


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_matches_xautodl(dataset):
    pytest.importorskip("xautodl")
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    space = get_space("nb201", dataset=dataset)
    cols = space.sample_columns(3 * N_REF, seed=201)
    _, first = np.unique(space.index(cols), return_index=True)
    cols = {k: v[np.sort(first)[:N_REF]] for k, v in cols.items()}
    archs = space.from_columns(cols)
    assert len(set(archs)) == N_REF
    r = nf.score(space.encode_columns(cols), convention="nb201")
    for i, arch in enumerate(archs):
        mflops, mparams, flops, numel = _xautodl_counts(arch, dataset)
        ours_ops, ours_params = int(r["ops"][i]), int(r["params"][i])
        assert ours_ops == round(mflops * 1e6) == flops, (dataset, arch)
        assert ours_params == round(mparams * 1e6) == numel, (dataset, arch)


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_extremes_match_xautodl(dataset):
    pytest.importorskip("xautodl")
    pytest.importorskip("torch")
    space = get_space("nb201", dataset=dataset)
    r = nf.score(space.enumerate(), convention="nb201")
    idx = np.unique([np.argmin(r["ops"]), np.argmax(r["ops"]),
                     np.argmin(r["params"]), np.argmax(r["params"])])
    archs = space.from_columns(space.enumerate_columns())
    for i in idx:
        mflops, mparams, flops, numel = _xautodl_counts(archs[i], dataset)
        assert int(r["ops"][i]) == flops and int(r["params"][i]) == numel


def test_other_c_n_match_xautodl():
    pytest.importorskip("xautodl")
    from xautodl.models import get_cell_based_tiny_net
    from xautodl.utils.flop_benchmark import get_model_infos
    space = get_space("nb201", dataset="cifar100", C=8, N=2)
    cols = space.sample_columns(5, seed=3)
    r = nf.score(space.encode_columns(cols), convention="nb201")
    for i, arch in enumerate(space.from_columns(cols)):
        model = get_cell_based_tiny_net({"name": "infer.tiny", "C": 8, "N": 2,
                                         "arch_str": arch, "num_classes": 100})
        mflops, _ = get_model_infos(model, (1, 3, 32, 32))
        assert int(r["ops"][i]) == round(mflops * 1e6)
        assert int(r["params"][i]) == sum(p.numel() for p in model.parameters())


# --------------------------------------------------------- records / wiring
def _by_hand(arch: str, C=16, N=5, dataset="cifar10") -> np.ndarray:
    """xautodl's TinyNetwork written with the Net builder, module by module."""
    c, h, w, classes = DATASETS[dataset]
    ops = [[item.split("~") for item in node.strip("|").split("|")] for node in arch.split("+")]
    net = nf.Net(c, h, w)
    x = net.bn(net.conv(net.input, C, 3, padding=1))

    def relu_conv_bn(x, cout, k, stride, pad):
        return net.bn(net.conv(net.act(x, "relu"), cout, k, stride=stride, padding=pad))

    for stage in range(3):
        cout = C << stage
        if stage:
            a = relu_conv_bn(x, cout, 3, 2, 1)
            b = relu_conv_bn(a, cout, 3, 1, 1)
            res = net.conv(net.avgpool(x, 2, 2), cout, 1)
            x = net.add(res, b)
        for _ in range(N):
            nodes = [x]
            for node in ops:
                acc = None
                for name, src in node:
                    y = nodes[int(src)]
                    if name == "none":
                        e = net.zero(y)
                    elif name == "skip_connect":
                        e = net.identity(y)
                    elif name == "avg_pool_3x3":
                        e = net.avgpool(y, 3, 1, 1, count_include_pad=False)
                    else:
                        k = int(name[-1])
                        e = relu_conv_bn(y, cout, k, 1, k // 2)
                    acc = e if acc is None else net.add(acc, e)
                nodes.append(acc)
            x = nodes[-1]
    x = net.act(net.bn(x), "relu", inplace=True)
    net.linear(net.flatten(net.global_avgpool(x)), classes)
    return net.records


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_records_equal_hand_written_net(dataset):
    space = get_space("nb201", dataset=dataset)
    cols = space.sample_columns(40, seed=7)
    batch = space.encode_columns(cols)
    for i, arch in enumerate(space.from_columns(cols)):
        assert batch[i].tobytes() == _by_hand(arch, dataset=dataset).tobytes(), arch
    small = get_space("nb201", dataset=dataset, C=4, N=1)
    assert small.encode([EXAMPLE])[0].tobytes() == _by_hand(EXAMPLE, 4, 1, dataset).tobytes()


def test_memory_semantics(cifar10):
    """skip_connect is a view (no bytes), none allocates zeros like x.mul(0)."""
    skip = cifar10.encode(["|skip_connect~0|+|skip_connect~0|skip_connect~1|+"
                           "|skip_connect~0|skip_connect~1|skip_connect~2|"])[0]
    none = cifar10.encode(["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])[0]
    ts, tn = nf.layer_table(skip), nf.layer_table(none)
    assert (ts["act_bytes"][ts["op"] == "identity"] == 0).all()
    zeros = tn[tn["op"] == "zero"]
    assert (zeros["act_bytes"] == 4 * zeros["channels"] * zeros["height"] * zeros["width"]).all()
    assert len(zeros) == 6 * 15


# ------------------------------------------------------- enumeration, sampling
def test_enumeration(cifar10):
    cols = cifar10.enumerate_columns()
    assert cols["ops"].shape == (SIZE, 6) and cols["ops"].dtype == np.int8
    idx = cifar10.index(cols)
    assert (idx == np.arange(SIZE)).all()
    assert len(set(cifar10.from_columns(cols))) == SIZE
    # documented order: mixed radix, edge 1<-0 most significant
    assert cols["ops"][5 ** 5].tolist() == [1, 0, 0, 0, 0, 0]
    assert cols["ops"][1].tolist() == [0, 0, 0, 0, 0, 1]
    part = cifar10.enumerate(100, 200)
    full = cifar10.enumerate()
    assert len(part) == 100 and part.records.tobytes() == full[100:200].records.tobytes()


def test_sampling_is_chunk_independent(cifar10):
    n, seed = SAMPLE_BLOCK + 1000, 11
    whole = cifar10.sample_columns(n, seed=seed)
    pieces = concat_columns([cifar10.sample_columns(b - a, seed=seed, start=a)
                             for a, b in [(0, 5), (5, SAMPLE_BLOCK - 3), (SAMPLE_BLOCK - 3, n)]])
    assert (whole["ops"] == pieces["ops"]).all()
    assert (cifar10.sample_columns(n, seed=seed)["ops"] == whole["ops"]).all()
    assert not (cifar10.sample_columns(n, seed=seed + 1)["ops"] == whole["ops"]).all()
    b1 = cifar10.sample(300, seed=seed, start=SAMPLE_BLOCK - 100)
    b2 = nf.SpecBatch.concat([cifar10.sample(100, seed=seed, start=SAMPLE_BLOCK - 100),
                              cifar10.sample(200, seed=seed, start=SAMPLE_BLOCK)])
    assert b1.records.tobytes() == b2.records.tobytes()
    assert (b1.offsets == b2.offsets).all()
    # uniform over ops: every op on every edge
    assert all(set(np.unique(whole["ops"][:, e])) == set(range(5)) for e in range(6))


# ----------------------------------------------------------- natives, errors
def test_round_trips(cifar10):
    cols = cifar10.sample_columns(1000, seed=5)
    strings = cifar10.from_columns(cols)
    assert (cifar10.to_columns(strings)["ops"] == cols["ops"]).all()
    assert cifar10.from_columns(cifar10.to_columns(strings)) == strings
    arrow = cifar10.arrow_columns(cols)
    assert list(arrow) == ["arch"] and arrow["arch"].to_pylist() == strings
    assert (cifar10.decode(cifar10.encode_columns(cols))["ops"] == cols["ops"]).all()
    # other native forms
    names = [OPS[k] for k in cols["ops"][0]]
    for nat in (names, cols["ops"][0].tolist(), {"arch": strings[0]}, {"ops": names}):
        assert (cifar10.to_columns([nat])["ops"] == cols["ops"][:1]).all()
    assert cifar10.to_columns(strings[0])["ops"].shape == (1, 6)
    assert (cifar10.to_columns(cols["ops"])["ops"] == cols["ops"]).all()
    assert cifar10.from_columns(cifar10.to_columns([EXAMPLE])) == [EXAMPLE]


@pytest.mark.parametrize("native, field, words", [
    ("|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "arch", ["nor_conv_5x5", "node 1"]),
    ("|none~0|+|none~0|none~1|", "arch", ["3 nodes"]),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "arch", ["node 2", "2 incoming"]),
    ("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|", "arch", ["node 2", "out of range"]),
    ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "arch", ["node 2", "in order"]),
    ("|none~0|+|none~0|none~x|+|none~0|none~1|none~2|", "arch", ["not an integer"]),
    ("none~0+none~0|none~1+none~0|none~1|none~2", "arch", ["form"]),
    (["none"] * 5, "ops", ["expected 6 ops", "got 5"]),
    (["none"] * 5 + ["conv"], "ops[5]", ["unknown op 'conv'", "3<-2"]),
    ([0, 0, 7, 0, 0, 0], "ops[2]", ["out of range"]),
    ([0, 0, 0.5, 0, 0, 0], "ops[2]", ["expected an op name"]),
    ({"genotype": "x"}, "arch", ["neither"]),
    (42, "arch", ["got int"]),
])
def test_bad_natives_name_candidate_and_field(cifar10, native, field, words):
    with pytest.raises(NativeError) as info:
        cifar10.to_columns([EXAMPLE, native])
    err = info.value
    assert err.candidate == 1 and err.field == field
    msg = str(err)
    assert "candidate 1" in msg and repr(field) in msg
    for w in words:
        assert w in msg


def test_bad_columns(cifar10):
    ops = np.zeros((3, 6), dtype=np.int8)
    ops[2, 4] = 5
    with pytest.raises(NativeError, match=r"candidate 2, field 'ops\[4\]'"):
        cifar10.encode_columns({"ops": ops})
    with pytest.raises(NativeError, match="shape"):
        cifar10.encode_columns({"ops": np.zeros((3, 5), dtype=np.int8)})
    with pytest.raises(ValueError, match="dataset"):
        get_space("nb201", dataset="imagenet")


def test_decode_rejects_foreign_records(cifar10):
    batch = cifar10.sample(50, seed=2)
    recs = batch.records.copy()
    recs["out_channels"][batch.offsets[31] + 40] += 1
    with pytest.raises(NativeError, match="candidate 31, field 'records'"):
        cifar10.decode(nf.SpecBatch(recs, batch.offsets))
    with pytest.raises(NativeError, match="candidate 0"):
        get_space("nb201", dataset="ImageNet16-120").decode(batch)


def test_registry_and_describe():
    space = get_space("nb201")
    assert isinstance(space, NB201Space)
    d = space.describe()
    assert d["size"] == SIZE and d["params"] == {"dataset": "cifar10", "C": 16, "N": 5}
    assert d["native"] == EXAMPLE and "ops" in d["columns"]
    assert [tuple(e) for e in EDGES] == [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
    assert nf.get_convention("nb201").unit == "MACs"
