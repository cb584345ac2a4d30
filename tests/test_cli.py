"""Every subcommand through its real entry point (``python -m nasflops``)."""
import json
import os
import subprocess
import sys

import pytest

import nasflops as nf
from nasflops.units import format_count

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def run(*args, check=True, cwd=None):
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    p = subprocess.run([sys.executable, "-m", "nasflops", *map(str, args)], capture_output=True,
                       text=True, env=env, cwd=cwd, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def assert_user_error(p, *fragments):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_help_teaches_by_example():
    out = run("--help").stdout
    for cmd in ("spaces", "score", "count", "validate", "stats", "filter", "examples:"):
        assert cmd in out
    for cmd in ("spaces", "score", "count", "validate", "stats", "filter"):
        sub = run(cmd, "--help").stdout
        assert "example" in sub and f"nasflops {cmd}" in sub


def test_spaces_lists_sizes():
    p = run("spaces", "--json")
    spaces = {s["name"]: s for s in json.loads(p.stdout)}
    assert spaces["nb201"]["size"] == 15625
    from nasflops.search_spaces import zoo
    assert spaces["zoo"]["size"] == len(zoo.MODEL_NAMES)
    assert "ofa-mbv3" in spaces
    table = run("spaces").stdout
    assert "15,625" in table and "nb201" in table


def test_count_zoo_model_names_convention_and_totals():
    out = run("count", "resnet50").stdout
    r = nf.score(nf.get_space("zoo").encode(["resnet50"]))[0]
    assert "convention 'macs'" in out and "4.089 GMACs" in out
    assert f"{int(r['params']):,} params" in out          # 25,557,032
    assert "conv2d" in out and "total" in out
    flops = run("count", "resnet50", "--convention", "flops", "--batch-size", "2", "--dtype", "fp16").stdout
    rf = nf.score(nf.get_space("zoo").encode(["resnet50"]), convention="flops", batch_size=2)[0]
    assert f"{int(rf['ops']) / 1e9:.3f} GFLOPs (flops)" in flops and "fp16" in flops


def test_count_all_conventions_side_by_side():
    out = run("count", "mobilenet_v2", "--all-conventions").stdout
    for name, c in nf.CONVENTIONS.items():
        total = int(nf.score(nf.get_space("zoo").encode(["mobilenet_v2"]), convention=c)["ops"][0])
        row = next(ln for ln in out.splitlines() if f" {name} " in ln)
        assert format_count(total, c.unit) in row, (name, row)
    assert "attention records" not in out


def test_count_all_conventions_warns_of_the_attention_fast_path():
    out = run("count", "vit_b_16", "--all-conventions").stdout
    note = next(ln for ln in out.splitlines() if ln.startswith("note: "))
    assert note.startswith("note: 12 attention records.") and "torch.no_grad()" in note


def test_count_native_encodings():
    out = run("count", ARCH).stdout
    assert "nb201" in out and "802,426 params" in out
    ofa = nf.get_space("ofa-mbv3")
    native = ofa.from_columns(ofa.sample_columns(1, seed=3))[0]
    out = run("count", json.dumps(native)).stdout
    r = nf.score(ofa.encode([native]))[0]
    assert f"{int(r['params']):,} params" in out


def test_count_torch_file(tmp_path):
    pytest.importorskip("torch")
    f = tmp_path / "tiny.py"
    f.write_text(
        "import torch.nn as nn\n"
        "INPUT_SHAPE = (3, 16, 16)\n"
        "model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),\n"
        "                      nn.Flatten(), nn.Linear(8, 10))\n")
    out = run("count", f).stdout
    params = 3 * 8 * 9 + 8 + 8 * 10 + 10
    assert f"{params:,} params" in out
    # a module that never runs: its parameters are named, not counted
    f.write_text(f.read_text().replace("model = nn.Sequential(", "body = nn.Sequential(") +
                 "class Model(nn.Module):\n"
                 "    def __init__(self):\n"
                 "        super().__init__()\n"
                 "        self.body, self.spare = body, nn.Conv2d(8, 8, 1)\n"
                 "    def forward(self, x):\n"
                 "        return self.body(x)\n"
                 "model = Model()\n")
    done = run("count", f)
    assert f"{params:,} params" in done.stdout
    assert "note: 72 of" in done.stderr and "spare (72)" in done.stderr


def test_user_errors_are_one_line():
    assert_user_error(run("count", "resnet5000", check=False), "unknown model 'resnet5000'")
    assert_user_error(run("count", "|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|", check=False),
                      "nor_conv_9x9")
    assert_user_error(run("score", "nasbench9000", "-n", "10", "-o", "x", check=False), "unknown search space")
    assert_user_error(run("stats", "/nonexistent/results", check=False), "no such results dataset")
    assert_user_error(run("filter", "/nonexistent", "--max-macs", "three hundred", "-o", "y", check=False),
                      "not a count: 'three hundred'")
    assert_user_error(run("filter", "/nonexistent", "--max-peak-act-bytes", "2XB", "-o", "y", check=False),
                      "unknown unit")
    assert_user_error(run("scor", "nb201", check=False), "invalid choice: 'scor'")
    assert_user_error(run("count", "missing_model.py", check=False), "no such file")
    assert_user_error(run("count", "resnet50", "--convention", "gflops", check=False), "unknown convention")
    assert_user_error(run("score", "nb201", "-o", "x", check=False), "either -n N")


@pytest.fixture(scope="module")
def nb201_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "nb201.parquet"
    p = run("score", "nb201", "-n", "3000", "--seed", "7", "-o", out, "--convention", "flops",
            "--chunk-size", "1000", "-j", "2", "--no-progress")
    return out, p


def test_score_writes_dataset_and_summary(nb201_run):
    out, p = nb201_run
    t = nf.read_results(out)
    assert t.num_rows == 3000 and sorted(t["arch_id"].to_pylist()) == list(range(3000))
    space = nf.get_space("nb201")
    expect = nf.score(space.sample(3000, seed=7), convention="flops")
    got = t.sort_by("arch_id")
    assert got["ops"].to_pylist() == expect["ops"].tolist()
    assert got["arch"].to_pylist() == space.from_columns(space.sample_columns(3000, seed=7))
    assert "3,000 valid candidates" in p.stdout and "convention 'flops'" in p.stdout
    assert str(out) in p.stdout.replace("\n", "")
    assert "median" in p.stdout


def test_score_resume_and_refuse_overwrite(nb201_run):
    out, _ = nb201_run
    p = run("score", "nb201", "-n", "3000", "--seed", "7", "-o", out, "--convention", "flops",
            "--chunk-size", "1000", "--no-progress", check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    p = run("score", "nb201", "-n", "3000", "--seed", "7", "-o", out, "--convention", "flops",
            "--chunk-size", "1000", "--no-progress", "--resume")
    assert "0 part(s) written, 3 resumed" in p.stdout


def test_stats_quantiles_groupby_and_plot(nb201_run, tmp_path):
    out, _ = nb201_run
    png = tmp_path / "dist.png"
    p = run("stats", out, "--by", "arch", "--plot", png)
    t = nf.read_results(out)
    import numpy as np
    params = t["params"].to_numpy()
    assert format_count(int(np.median(params))) in p.stdout
    assert "macs by arch" in p.stdout
    assert png.exists() and png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_filter_budget(nb201_run, tmp_path):
    out, _ = nb201_run
    small = tmp_path / "small.parquet"
    run("filter", out, "--max-macs", "50M", "--max-params", "0.5M", "-o", small)
    t = nf.read_results(out)
    keep = [m <= 50_000_000 and p <= 500_000 for m, p in zip(t["macs"].to_pylist(), t["params"].to_pylist())]
    f = nf.read_results(small)
    assert f.num_rows == sum(keep) > 0
    assert max(f["macs"].to_pylist()) <= 50_000_000 and max(f["params"].to_pylist()) <= 500_000
    assert nf.read_metadata(small)["convention"] == "flops"


def test_validate_cli():
    pytest.importorskip("torch")
    p = run("validate", "nb201", "-n", "3", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "mismatch" in p.stdout.lower() or "agree" in p.stdout.lower()


def test_validate_cli_random_transformers():
    pytest.importorskip("torch")
    p = run("validate", "random-transformer", "-n", "3", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "random-transformer, 3 architectures" in p.stdout, p.stdout
    assert "all counts agree exactly" in p.stdout, p.stdout


def test_count_torchstat_report():
    from nasflops.reports import torchstat_report
    from nasflops.search_spaces import zoo
    out = run("count", "vgg16", "--report", "torchstat").stdout
    rec, names = zoo.build("vgg16", with_names=True)
    assert out == torchstat_report(rec, names, zoo.modules("vgg16")).text
    lines = out.splitlines()
    assert lines[0].split() == ["module", "name", "input", "shape", "output", "shape", "params",
                                "memory(MB)", "MAdd", "Flops", "MemRead(B)", "MemWrite(B)",
                                "roofline[%]", "MemR+W(B)"]
    assert lines[1].split()[:3] == ["0", "features.0", "3"]
    assert "Total MAdd: 30.96GMAdd" in lines and "on t4 " in out
    a100 = run("count", "resnet18", "--report", "torchstat", "--device", "a100").stdout
    assert "on a100 " in a100 and "layer1.0.relu" in a100
    assert_user_error(run("count", "vgg16", "--report", "torchstat", "--batch-size", "4", check=False),
                      "batch 1, fp32")
    assert_user_error(run("count", "vgg16", "--report", "torchstat", "-c", "flops", check=False),
                      "drop --convention")
    assert_user_error(run("count", "vgg16", "--report", "torchstat", "--device", "tpu9", check=False),
                      "unknown device 'tpu9'")
    assert_user_error(run("count", "vgg16", "--report", "nvidia-smi", check=False), "invalid choice")


def test_count_memory_semantics_and_device():
    rec = nf.get_space("zoo").encode(["vgg16"])
    own = run("count", "vgg16").stdout
    ts = run("count", "vgg16", "--memory", "torchstat").stdout
    r = nf.score(rec, memory="torchstat")[0]
    assert "torchstat memory" in ts and "torchstat memory" not in own
    assert "written 109.39 MiB" in ts and "written 109.36 MiB" in own
    assert f"{int(r['act_bytes']) / 2 ** 20:.2f}" == "109.39"
    lat = run("count", "vgg16", "-c", "flops", "--device", "t4").stdout
    r = nf.score(rec, convention="flops", device=nf.options.get_device("t4"))[0]
    assert f"roofline latency on t4: {float(r['latency_s']) * 1e3:.4g} ms" in lat
    assert_user_error(run("count", "vgg16", "--device", "t4", check=False), "count FLOPs")


def test_count_torchstat_report_of_a_torch_file(tmp_path):
    pytest.importorskip("torch")
    f = tmp_path / "tiny.py"
    f.write_text(
        "import collections\n"
        "import torch.nn as nn\n"
        "INPUT_SHAPE = (3, 16, 16)\n"
        "model = nn.Sequential(collections.OrderedDict(conv=nn.Conv2d(3, 8, 3, padding=1),\n"
        "    relu=nn.ReLU(), pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(8, 10)))\n")
    out = run("count", f, "--report", "torchstat").stdout
    # conv MAdd (2*27 - 1 + 1) * 8 * 256, relu 8 * 256, linear (2*8 - 1) * 10
    assert f"Total MAdd: {(54 * 2048 + 2048 + 150) / 1e3:.2f}KMAdd" in out
    assert "Total params: 314" in out
    # rows named by module path, as torchstat names them
    rows = [line.split()[:2] for line in out.splitlines()[1:6]]
    assert rows == [["0", "conv"], ["1", "relu"], ["2", "pool"], ["3", "flat"], ["4", "fc"]]
    assert "module names: record indices" not in out
