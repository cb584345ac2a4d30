"""torchstat 0.0.7: its conventions, its memory semantics and its report.

* The published VGG-16 report (the figures issue 15 quotes) is reproduced
  total for total and row for row.
* Each per-op rule of ``torchstat-madd``/``torchstat-flops`` and of the
  ``torchstat`` memory semantics, on small nets, by hand.
* The real torchstat, run in a fresh process (it patches torch's module
  classes for good) with pandas 2 and ``tests/pandas_append_shim.py``
  (torchstat calls ``DataFrame.append``, gone in pandas 2; pandas < 2 needs
  numpy < 2, and this environment has numpy 2), on torchvision's VGG-16,
  ResNet-18 and MobileNetV2: equal to nasflops' report per module and in
  total, in every column but the measured duration, and its printed text
  equal byte for byte but for that column.  Its renderer also prints
  nasflops' own rows (long names, never-called modules, scientific
  notation) exactly as nasflops does.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nasflops as nf
from nasflops import Flag, Net
from nasflops.reports import TORCHSTAT_COLUMNS, round_value, torchstat_report
from nasflops.search_spaces import zoo

ROOT = Path(__file__).resolve().parent.parent


def report(name):
    records, names = zoo.build(name, with_names=True)
    return torchstat_report(records, names, zoo.modules(name))


def ops(spec, convention, **kw):
    return int(nf.score(spec, convention=convention, **kw)["ops"][0])


# ---------------------------------------------------------- the published report
def test_vgg16_published_totals():
    r = report("vgg16")
    t = r.total
    assert t["params"] == 138_357_544
    assert f"{t['memory(MB)']:.2f}" == "109.39"
    assert t["MAdd"] == 30_958_666_264
    assert t["Flops"] == 15_503_489_024
    assert t["MemR+W(B)"] == 783_170_624
    assert round_value(t["MemR+W(B)"], binary=True) == "746.89M"
    lines = r.text.splitlines()
    assert "Total memory: 109.39MB" in lines and "Total MAdd: 30.96GMAdd" in lines
    assert "Total Flops: 15.5GFlops" in lines and "Total MemR+W: 746.89MB" in lines
    # the same totals straight from score(): conventions + memory semantics
    rec = zoo.build("vgg16")
    s = nf.score(rec, convention="torchstat-madd", memory="torchstat")[0]
    assert int(s["ops"]) == 30_958_666_264 and int(s["params"]) == 138_357_544
    assert int(s["read_bytes"]) + int(s["write_bytes"]) == 783_170_624
    assert f"{int(s['act_bytes']) / 2 ** 20:.2f}" == "109.39"
    assert ops(rec, "torchstat-flops", memory="torchstat") == 15_503_489_024


def test_vgg16_published_rows():
    rows = {r["module name"]: r for r in report("vgg16").rows}
    f0 = rows["features.0"]
    assert (f0["MAdd"], f0["Flops"], f0["MemRead(B)"], f0["MemWrite(B)"]) == \
        (173_408_256, 89_915_392, 609_280, 12_845_056)
    assert (rows["features.4"]["MAdd"], rows["features.4"]["Flops"]) == (2_408_448, 3_211_264)
    c0 = rows["classifier.0"]
    assert (c0["MAdd"], c0["Flops"], c0["MemRead(B)"]) == (205_516_800, 102_760_448, 411_158_528)


def test_nasflops_own_vgg16_figures_differ_where_the_issue_says():
    rec = zoo.build("vgg16")
    own = nf.score(rec, convention="flops")[0]
    assert int(own["ops"]) == 30_960_230_912
    # dropout outputs are views in nasflops' semantics, torchstat counts them
    assert f"{int(own['act_bytes']) / 2 ** 20:.2f}" == "109.36"
    assert f"{(int(own['read_bytes']) + int(own['write_bytes'])) / 2 ** 20:.2f}" == "747.08"


# ---------------------------------------------------------------- per-op rules
def one(build, shape=(8, 10, 10), **kw):
    """Score a net whose layer 1 is ``build(net, net.input)``; (madd, flops, record table)."""
    net = Net(*shape)
    build(net, net.input)
    madd = nf.layer_table(net, convention="torchstat-madd", memory="torchstat", **kw)
    flops = nf.layer_table(net, convention="torchstat-flops", memory="torchstat", **kw)
    return madd, flops


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("groups", [1, 2, 8])
def test_conv_rules(bias, groups):
    madd, flops = one(lambda n, x: n.conv(x, 16, 3, padding=1, groups=groups, bias=bias))
    out, k, cin = 16 * 10 * 10, 9, 8
    b = int(bias)
    # compute_Conv2d_madd: (2 K Cin/g - 1 + bias) per output element
    assert madd["ops"][1] == (2 * k * (cin // groups) - 1 + b) * out
    # compute_Conv2d_flops: K Cin (Cout/g) per position, + Cout per position with bias
    assert flops["ops"][1] == k * cin * (16 // groups) * 100 + b * out
    params = 16 * (cin // groups) * k + 16 * b
    assert madd["read_bytes"][1] == 4 * (cin * 100 + params)
    assert madd["write_bytes"][1] == 4 * out


def test_linear_rules():
    madd, flops = one(lambda n, x: n.linear(n.flatten(x), 7, bias=True), shape=(3, 2, 2))
    # (2 I - 1) O, no bias term; Flops I O; read I + params
    assert (madd["ops"][2], flops["ops"][2]) == ((2 * 12 - 1) * 7, 12 * 7)
    assert (madd["read_bytes"][2], madd["write_bytes"][2]) == (4 * (12 + 12 * 7 + 7), 4 * 7)


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_rules(affine):
    madd, flops = one(lambda n, x: n.bn(x, affine=affine))
    assert madd["ops"][1] == 4 * 800
    assert flops["ops"][1] == 800 * (2 if affine else 1)
    # running mean and var: 2C read whether affine or not
    assert (madd["read_bytes"][1], madd["write_bytes"][1]) == (4 * (800 + 16), 4 * 800)


@pytest.mark.parametrize("pool", ["maxpool", "avgpool"])
def test_pool_rules(pool):
    madd, flops = one(lambda n, x: getattr(n, pool)(x, 3, stride=2, padding=1))
    out = 8 * 5 * 5
    assert madd["ops"][1] == ((9 - 1) if pool == "maxpool" else 9) * out
    # compute_Pool2d_flops: the INPUT's elements (K^2 out only when windows tile it)
    assert flops["ops"][1] == 800
    assert (madd["read_bytes"][1], madd["write_bytes"][1]) == (4 * 800, 4 * out)


@pytest.mark.parametrize("kind,counted", [("relu", True), ("relu6", True), ("sigmoid", False),
                                          ("hardswish", False), ("gelu", False), ("silu", False)])
@pytest.mark.parametrize("inplace", [False, True])
def test_activation_rules(kind, counted, inplace):
    madd, flops = one(lambda n, x: n.act(x, kind, inplace=inplace))
    c = 800 if counted else 0
    assert (madd["ops"][1], flops["ops"][1]) == (c, c)
    assert (madd["read_bytes"][1], madd["write_bytes"][1]) == (4 * c, 4 * c)
    assert madd["act_bytes"][1] == 4 * 800       # memory(MB) counts every module's output


def test_softmax_and_unsupported_modules():
    madd, flops = one(lambda n, x: n.softmax(x))
    # 3 |x| - 1 over the whole sample (its dim ignored); Flops not supported
    assert (madd["ops"][1], flops["ops"][1]) == (3 * 800 - 1, 0)
    assert ops(Net(8, 10, 10).records, "torchstat-madd") == 0
    net = Net(8, 10, 10)
    net.softmax(net.input)
    assert ops(net, "torchstat-madd", batch_size=3) == 3 * (3 * 800 - 1)
    for build in (lambda n, x: n.adaptive_avgpool(x, 2), lambda n, x: n.dropout(x),
                  lambda n, x: n.layernorm(x), lambda n, x: n.identity(x),
                  lambda n, x: n.add(x, x), lambda n, x: n.scale(x)):
        madd, flops = one(build)
        assert (madd["ops"][1], flops["ops"][1], madd["read_bytes"][1], madd["write_bytes"][1]) \
            == (0, 0, 0, 0)
        assert madd["act_bytes"][1] == 4 * int(madd["channels"][1] * madd["height"][1]
                                               * madd["width"][1])


@pytest.mark.parametrize("call", ["function", "method", "operator"])
def test_only_module_calls_are_seen(call):
    net = Net(8, 10, 10)
    with net.calling(call):
        x = net.act(net.conv(net.input, 8, 3, padding=1), "relu")
    t = nf.layer_table(net, convention="torchstat-madd", memory="torchstat")
    assert t["ops"].sum() == t["act_bytes"].sum() == t["read_bytes"].sum() == 0
    # nasflops' own conventions and memory see every call kind alike
    assert ops(net, "flops") > 0 and x == 2


def test_last_call_wins():
    net = Net(8, 10, 10)
    x = net.act(net.conv(net.input, 8, 3, padding=1, name="conv"), "relu", inplace=True, name="relu")
    with net.calling("operator"):
        y = net.add(x, net.input, inplace=True)               # out += identity
    net.act(y, "relu", inplace=True, name="relu")            # self.relu again, as in ResNet
    rec = net.records
    assert [bool(f & Flag.CALLED_AGAIN) for f in rec["flags"]] == [False, False, True, False, False]
    both = ops(rec, "flops")
    assert ops(rec, "torchstat-madd") == (2 * 9 * 8 - 1) * 800 + 800     # conv + one relu
    t = nf.layer_table(rec, convention="torchstat-madd", memory="torchstat")
    assert t["ops"][2] == t["act_bytes"][2] == t["read_bytes"][2] == 0
    assert t["ops"][4] == 800 and t["act_bytes"][4] == 3200
    # conventions that count every call still do
    assert both == nf.layer_table(rec, convention="flops")["ops"].sum()
    assert nf.layer_table(rec, convention="flops")["ops"][2] == 800


def test_called_again_counts_weights_once():
    net = Net(8, 10, 10)
    x = net.conv(net.input, 8, 3, padding=1, name="shared")
    net.conv(x, 8, 3, padding=1, name="shared")               # the same weights, called twice
    r = nf.score(net)[0]
    assert int(r["params"]) == 8 * 8 * 9                       # sum(p.numel()) of the model
    assert int(r["macs"]) == 2 * 8 * 8 * 9 * 100               # both calls still compute
    assert int(r["read_bytes"]) == 2 * 4 * (800 + 8 * 8 * 9)   # and read the weights


def test_mark_called_again():
    net = Net(8, 4, 4)
    a, b, c, d, e = (net.conv(net.input, 8, 1) for _ in range(5))
    net.concat(a, b, c, d, e, name="cat")                      # one call, two records
    rec = nf.spec.mark_called_again(net.records, net.names)
    assert not (rec["flags"] & Flag.CALLED_AGAIN).any()
    names = ["", "x", "", "x", "", "", "cat", "cat"]
    rec = nf.spec.mark_called_again(net.records, names)
    assert [bool(f & Flag.CALLED_AGAIN) for f in rec["flags"]] == \
        [False, True, False, False, False, False, False, False]
    with pytest.raises(ValueError, match="3 names for 8 records"):
        nf.spec.mark_called_again(net.records, ["", "", ""])


# --------------------------------------------------------------- memory semantics
def test_memory_semantics_option():
    rec = zoo.build("resnet18")
    own = nf.score(rec)[0]
    ts = nf.score(rec, memory="torchstat")[0]
    r = nf.score(rec, memory="torchstat")
    assert r.memory == "torchstat" and nf.score(rec).memory == "nasflops"
    # the peak is one quantity: the live buffers (torchstat has none)
    assert int(ts["peak_act_bytes"]) == int(own["peak_act_bytes"])
    assert int(ts["ops"]) == int(own["ops"]) and int(ts["params"]) == int(own["params"])
    # functional adds and the first relu of each block are invisible to torchstat
    assert int(ts["act_bytes"]) < int(own["act_bytes"])
    with pytest.raises(ValueError, match="unknown memory semantics 'pytorch'"):
        nf.score(rec, memory="pytorch")
    assert nf.ScoringOptions.make(memory="torchstat").metadata()["memory"] == "torchstat"


def test_memory_scales_with_batch_and_dtype():
    rec = zoo.build("vgg11")
    one_ = nf.score(rec, memory="torchstat")[0]
    four = nf.score(rec, memory="torchstat", batch_size=4, act_dtype="fp16")[0]
    assert int(four["act_bytes"]) == 2 * int(one_["act_bytes"])


# ------------------------------------------------------------------ the report
def test_report_rows_follow_registration_order_and_last_calls():
    r = report("resnet50")
    names = [row["module name"] for row in r.rows]
    # Bottleneck registers relu after bn3, and runs it after bn1, bn2 and the add
    assert names[names.index("layer1.0.bn3") + 1] == "layer1.0.relu"
    relu = r.rows[names.index("layer1.0.relu")]
    assert relu["output shape"] == "256  56  56"               # the last call, after the add
    assert names == [n for n in zoo.modules("resnet50")]


def test_report_never_called_modules_and_index_names():
    r = report("shufflenet_v2_x1_0")
    row = next(x for x in r.rows if x["module name"] == "stage2.1.branch1")
    assert (row["input shape"], row["params"], row["MAdd"], row["memory(MB)"]) == \
        ("  0   0   0", 0, 0, 0.0)
    rec = zoo.build("alexnet")
    r = torchstat_report(rec)
    assert not r.named and r.rows[0]["module name"] == "1"
    assert "module names: record indices" in r.text
    assert r.total["MAdd"] == report("alexnet").total["MAdd"]


def test_report_from_a_net_and_errors():
    net = Net(3, 8, 8)
    net.declare("conv", "bn", "unused")
    net.bn(net.conv(net.input, 4, 3, padding=1, name="conv"), name="bn")
    r = torchstat_report(net, device="a100")
    assert [x["module name"] for x in r.rows] == ["conv", "bn", "unused"]
    assert r.device.name == "a100" and 0 < r.total["roofline[%]"] <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="unknown device 'h1000'"):
        torchstat_report(net, device="h1000")
    empty = Net(3, 8, 8)
    with empty.calling("function"):
        empty.act(empty.input, "relu")
    with pytest.raises(ValueError, match="no module calls"):
        torchstat_report(empty)


# --------------------------------------------------------- the real torchstat
MODELS = ("vgg16", "resnet18", "mobilenet_v2")


def _nodes(r):
    """A nasflops report's rows as torchstat's renderer takes them."""
    return [dict(row, input=[int(v) for v in row["input shape"].split()],
                 output=[int(v) for v in row["output shape"].split()],
                 duration=row["roofline[%]"]) for row in r.rows]


def _corner_case():
    """Long names, a never-called module and totals past 1e9 (scientific notation)."""
    net = Net(512, 32, 32)
    long = "encoder.stages.0.blocks.0.attention.projection.weighted_sum.0"
    x = net.conv(net.input, 1024, 3, padding=1, bias=True, name=long)
    net.declare("encoder.unused")
    x = net.global_avgpool(net.act(x, "relu", name="encoder.relu"), name="pool")
    with net.calling("function"):
        x = net.flatten(x)
    net.linear(x, 300_000, name="head")
    return torchstat_report(net)


@pytest.fixture(scope="module")
def real_torchstat(torchvision):
    pytest.importorskip("torchstat")
    pytest.importorskip("pandas")
    corner = _corner_case()
    request = {"models": list(MODELS), "nodes": {"corner": _nodes(corner)}}
    done = subprocess.run([sys.executable, "-m", "tests.run_torchstat"], cwd=ROOT, check=True,
                          input=json.dumps(request), capture_output=True, text=True)
    answer = json.loads(done.stdout)
    answer["corner_report"] = corner
    return answer


def _masked(text, column="duration[%]"):
    """A printed report without torchstat's 'not supported' lines and blank
    lines, its ``column`` blanked in the table (nasflops prints roofline[%]
    where torchstat prints duration[%], in a column of the same width)."""
    lines = [ln for ln in text.splitlines()
             if ln and not ln.startswith(("[MAdd]", "[Flops]", "[Memory]"))]
    a = lines[0].index(column)
    b = a + len(column)
    rule = next(i for i, ln in enumerate(lines) if ln.startswith("="))
    return [ln[:a] + " " * (b - a) + ln[b:] for ln in lines[:rule]] + lines[rule:]


@pytest.mark.parametrize("name", MODELS)
def test_real_torchstat_per_module_and_total(name, real_torchstat):
    theirs = real_torchstat["models"][name]
    mine = report(name)
    assert len(mine.rows) == len(theirs["rows"])
    for k, (a, b) in enumerate(zip(mine.rows, theirs["rows"])):
        for col in TORCHSTAT_COLUMNS:
            if col == "roofline[%]":
                continue
            assert a[col] == b[col], (name, k, b["module name"], col, a[col], b[col])
    for col in ("params", "memory(MB)", "MAdd", "Flops", "MemRead(B)", "MemWrite(B)", "MemR+W(B)"):
        assert mine.total[col] == theirs["total"][col], (name, col)
    assert round(theirs["total"]["duration[%]"], 4) == 1.0


@pytest.mark.parametrize("name", MODELS)
def test_real_torchstat_text(name, real_torchstat):
    theirs = _masked(real_torchstat["models"][name]["text"])
    mine = _masked(report(name).text, "roofline[%]")
    assert mine[:len(theirs)] == theirs
    assert len(mine) == len(theirs) + 2          # the roofline and MemRead/MemWrite lines


def test_real_torchstat_renders_nasflops_rows(real_torchstat):
    theirs = real_torchstat["nodes"]["corner"]
    corner = real_torchstat["corner_report"]
    expected = _masked(theirs["text"])
    assert _masked(corner.text, "roofline[%]")[:len(expected)] == expected
    assert theirs["total"]["MemR+W(B)"] == corner.total["MemR+W(B)"] > 1e9
    table = corner.text.splitlines()
    total = next(ln for ln in table if ln.startswith("total"))
    assert "e+09" in total                                   # scientific notation past 1e9
    assert table[1].split()[1].endswith("...")               # a name over 49 characters
    assert table[2].split()[1:5] == ["encoder.unused", "0", "0", "0"]
