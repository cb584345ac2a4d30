"""Every subcommand against a table of bad inputs: exit 2, one line, no traceback.

Every case runs through :func:`nasflops.cli.main` (an exception escaping it
is what prints a traceback), and a sample of them through the real entry
point (``python -m nasflops``) in their own processes.  Counts out of range, fractions,
infinities, huge space parameters, missing fields, corrupt or garbled
datasets, bad YAML, model files that raise, paths that cannot be written:
a user mistake is always one line on stderr naming what is wrong, and exit
code 2.
"""
import contextlib
import io
import os
import shutil
import subprocess
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest

from nasflops.cli import main
from nasflops.pipeline import score_space
from nasflops.search_spaces import get_space
from nasflops.storage import RUN_FILE, list_parts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Datasets (good, corrupt, garbled), YAML and model files the cases name."""
    d = tmp_path_factory.mktemp("bad")
    ds = str(d / "ds")
    score_space(get_space("nb201"), n=300, seed=0, out=ds, chunk_size=100, progress=False)
    corrupt, garbled = str(d / "corrupt"), str(d / "garbled")
    shutil.copytree(ds, corrupt)
    part = list_parts(corrupt)[1]
    data = bytearray(open(part, "rb").read())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    open(part, "wb").write(data)
    shutil.copytree(ds, garbled)
    open(os.path.join(garbled, RUN_FILE), "w").write("{not json")
    (d / "empty").mkdir()
    (d / "notparquet").mkdir()
    (d / "notparquet" / "part-000000.parquet").write_bytes(b"PAR1 this is not parquet")
    (d / "plainfile").write_text("x")
    texts = {
        "malformed.yaml": "stages: [",
        "tag.yaml": "!!python/object/apply:os.system ['echo pwned']",
        "nan.yaml": "name: x\nstages:\n  - {width: .nan, depth: 1, block: {type: conv}}",
        "huge.yaml": "name: x\nstages:\n  - {width: 16, depth: 1e30, block: {type: conv}}",
        "wrongtype.yaml": "name: x\nstages:\n  - {width: 16, depth: 1, block: {type: [[conv]]}}",
        "list.yaml": "- a\n- b",
        "raises.py": "raise RuntimeError('broken model file')\n",
        "exits.py": "import sys\nsys.exit(3)\n",
        "syntax.py": "def (:\n",
        "nomodel.py": "x = 1\n",
        "notmodule.py": "model = 5\nINPUT_SHAPE = (3, 8, 8)\n",
        "lm_kv.yaml": "type: language_model\nname: x\nvocab: 100\nlayers: 2\nhidden: 64\n"
                      "heads: 8\nkv_heads: [3]\nffn: 128\n",
        "lm_topk.yaml": "type: language_model\nname: x\nvocab: 100\nlayers: 2\nhidden: 64\n"
                        "heads: 4\nffn: 128\nexperts: [2, 4]\ntop_k: [4]\n",
        "lm_heads.yaml": "type: language_model\nname: x\nvocab: 100\nlayers: 2\nhidden: [64, 100]\n"
                         "heads: 8\nffn: 128\n",
    }
    for name, text in texts.items():
        (d / name).write_text(text)
    return d


def cases(d):
    ds, out = str(d / "ds"), str(d / "out")
    score = ["score", "nb201", "-o", out, "--no-progress"]
    return [
        # spaces
        ["spaces", "--bogus"], ["spaces", "extra"],
        # score: counts, seeds, jobs, chunks, options
        score + ["-n", "1e400"], score + ["-n", "1e9999999999"], score + ["-n", "1.5"],
        score + ["-n", "-3"], score + ["-n", "inf"], score + ["-n", "nan"], score + ["-n", "0x10"],
        score + ["-n", "2000000000000000"], score + ["-n", "10", "--seed", "-1"],
        score + ["-n", "10", "--seed", "1e3"], score + ["-n", "10", "--seed", "9" * 30],
        score + ["-n", "10", "-j", "0"], score + ["-n", "10", "-j", "100000"],
        score + ["-n", "10", "--chunk-size", "0"], score + ["-n", "10", "--chunk-size", "1e12"], score + ["-n", "10", "--batch-size", "0"],
        score + ["-n", "10", "--batch-size", "9223372036854775808"],
        score + ["-n", "10", "--batch-size", "1.5"], score + ["-n", "10", "--convention", "gflops"],
        score + ["-n", "10", "--dtype", "fp13"], score + ["-n", "10", "--all"], score,
        # score: space parameters and definitions
        score + ["-n", "10", "-p", "C=2147483647"], score + ["-n", "10", "-p", "N=100000000"],
        score + ["-n", "10", "-p", "C=[1]"], score + ["-n", "10", "-p", "dataset=imagenet"],
        score + ["-n", "10", "-p", "nokey"], score + ["-n", "10", "-p", "foo=1"],
        ["score", "ofa-mbv3", "-n", "10", "-o", out, "-p", "width_mult=1e9"],
        ["score", "ofa-mbv3", "-n", "10", "-o", out, "-p", "width_mult=NaN"],
        ["score", "ofa-mbv3", "--all", "-o", out], ["score", "nasbench9000", "-n", "1", "-o", out],
        *[["score", f"yaml:{d / y}", "-n", "10", "-o", out]
          for y in ("malformed.yaml", "tag.yaml", "nan.yaml", "huge.yaml", "wrongtype.yaml",
                    "list.yaml", "missing.yaml")],
        # score: outputs that cannot take a run
        ["score", "nb201", "-n", "10", "-o", str(d / "plainfile"), "--no-progress"],
        ["score", "nb201", "-n", "300", "-o", ds, "--no-progress"],
        ["score", "nb201", "-n", "300", "-o", ds, "--no-progress", "--resume"],
        ["score", "nb201", "-n", "300", "-o", str(d / "garbled"), "--no-progress", "--resume"],
        ["score", "nb201", "-n", "10", "-o", "/proc/nasflops-out", "--no-progress"],
        # count
        ["count", "resnet5000"], ["count", "|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|"],
        ["count", "{bad json"], ["count", '{"ks": 5}'], ["count", "resnet18", "--batch-size", "0"],
        ["count", "resnet18", "--batch-size", "9223372036854775808"],
        ["count", "resnet18", "--top", "-1"], ["count", "resnet18", "--space", "nope"],
        ["count", "resnet18", "-p", "resolution=1000000000"],
        ["count", "resnet18", "-p", "resolution=-5"], ["count", "resnet18", "--dtype", "fp13"],
        ["count", str(d / "missing.py")], ["count", str(d / "raises.py")],
        ["count", str(d / "exits.py")], ["count", str(d / "syntax.py")],
        ["count", str(d / "nomodel.py")], ["count", str(d / "notmodule.py")],
        ["count", str(d / "notmodule.py"), "--input-shape", "3,100000,100000"],
        ["count", str(d / "notmodule.py"), "--input-shape", "a,b"],
        # count: language models
        ["count", "llama-2-7b", "--phase", "decode", "--seq-len", "10"],
        ["count", "llama-2-7b", "--phase", "prefill", "--context", "10"],
        ["count", "llama-2-7b", "--seq-len", "0"], ["count", "llama-2-7b", "--context", "1e3"],
        ["count", "gpt2", "--phase", "decode", "--context", "5000"],
        ["count", "llama-2-7b", "--phase", "forward"], ["count", "llama-2-7b", "--phase", "sideways"],
        ["count", "resnet18", "--phase", "decode"], ["count", "resnet18", "--context", "5"],
        ["count", "llama-2-7b", "--device", "tpu9000"], ["count", "llama-2-7b", "--device", "a100", "-c", "macs"],
        ["count", "llama-2-7b", "--report", "torchstat"], ["count", "llama-2-7b", "--causal", "quarter"],
        ["count", "llama-2-7b", "--phase", "train", "--logits", "last"],
        ["count", '{"layers": 3}', "--space", "llm-moe"], ["count", "{bad", "--space", "llm"],
        ["count", '{"layers": 8, "hidden": 1024, "heads": 16, "kv_heads": 4, "ffn": 2816, "experts": 8, '
                  '"top_k": 2}', "--space", "llm-moe", "--phase", "decode", "--seq-len", "8"],
        # score: language-model spaces
        ["score", "llm", "-n", "10", "-o", out, "--phase", "decode", "--seq-len", "5"],
        ["score", "nb201", "-n", "10", "-o", out, "--phase", "decode"],
        ["score", "llm", "-n", "10", "-o", out, "-p", "phase=sideways"],
        ["score", "llm", "-n", "10", "-o", out, "-p", "seq_len=1e12"],
        *[["score", f"yaml:{d / y}", "-n", "10", "-o", out]
          for y in ("lm_kv.yaml", "lm_topk.yaml", "lm_heads.yaml")],
        # validate
        ["validate", "nb201", "-n", "0"], ["validate", "nb201", "-n", "1e9"],
        ["validate", "nope", "-n", "1"], ["validate", "nb201", "-n", "1", "-c", "gflops"],
        ["validate", "nb201", "-n", "1", "--batch-size", "0"],
        ["validate", "zoo", "-n", "1", "--batch-size", "10000"],
        # stats
        ["stats", str(d / "nothing")], ["stats", ds, "--by", "nope"], ["stats", ds, "--metrics", "nope"],
        ["stats", ds, "--metric", "nope", "--by", "arch"], ["stats", ds, "--bins", "0"],
        ["stats", ds, "--bins", "1e9"], ["stats", ds, "--limit", "-1"],
        ["stats", str(d / "corrupt")], ["stats", str(d / "garbled")], ["stats", str(d / "empty")],
        ["stats", str(d / "notparquet")], ["stats", ds, "--plot", "/proc/nasflops.png"],
        # filter
        ["filter", ds, "--max-macs", "1e19", "-o", out], ["filter", ds, "--max-macs", "1e9999999999", "-o", out],
        ["filter", ds, "--max-macs", "-5", "-o", out], ["filter", ds, "--max-macs", "1.5", "-o", out],
        ["filter", ds, "--max-peak-act-bytes", "2XB", "-o", out],
        ["filter", ds, "--max-latency", "nan", "-o", out], ["filter", ds, "--max-latency", "-1", "-o", out],
        ["filter", ds, "--max-latency", "1", "-o", out], ["filter", ds, "--max-flops", "5M", "-o", out],
        ["filter", ds, "--max-macs", "1G", "-o", ds], ["filter", str(d / "nothing"), "-o", out],
        ["filter", str(d / "corrupt"), "--max-macs", "1G", "-o", out],
        ["filter", ds, "--max-macs", "1G", "-o", "/proc/nasflops-out"],
        ["filter", ds, "--max-kv-cache-bytes", "1GiB", "-o", out],
        ["filter", ds, "--max-active-params", "1.5", "-o", out],
    ]


def _in_process(args):
    """``nasflops ARGS`` through :func:`nasflops.cli.main`: (exit code, stderr).

    An exception escaping ``main`` is what would print a traceback: it is
    returned as the exit code ``"traceback"`` with the traceback as stderr.
    """
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(args))
        except SystemExit as e:           # argparse's usage errors
            code = e.code
        except BaseException:  # noqa: BLE001 -- an escape is the failure
            return "traceback", traceback.format_exc()
    return code, err.getvalue()


def _subprocess(args):
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    p = subprocess.run([sys.executable, "-m", "nasflops", *args], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=300)
    return p.returncode, p.stderr


def _failures(results) -> list:
    bad = []
    for args, (code, stderr) in results:
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        if not (code == 2 and len(lines) == 1 and "Traceback" not in stderr
                and lines[0].startswith("nasflops")):
            bad.append(f"{args}: exit {code}, stderr {stderr[-800:]!r}")
    return bad


def test_every_subcommand_refuses_bad_input_in_one_line(files):
    table = cases(files)
    assert {a[0] for a in table} == {"spaces", "score", "count", "validate", "stats", "filter"}
    bad = _failures([(args, _in_process(args)) for args in table])
    assert not bad, f"{len(bad)} of {len(table)} cases:\n" + "\n".join(bad)
    # nothing was written where nothing could be: no half-made output directory
    assert not os.path.exists(files / "out")
    assert sorted(os.listdir(files / "ds")) == [RUN_FILE] + [f"part-00000{i}.parquet" for i in range(3)]


def test_through_the_real_entry_point(files):
    """A sample of the table (one per subcommand and kind of fault) in real
    processes: the exit status and stderr a shell sees."""
    table = cases(files)
    sample = [a for a in table if a[:2] in (["spaces", "--bogus"], ["count", "resnet5000"])
              or "1e400" in a or "N=100000000" in a or "--by" in a and "nope" in a
              or a[:2] == ["stats", str(files / "corrupt")] or "1e19" in a]
    assert len(sample) >= 7
    with ThreadPoolExecutor(2) as pool:
        bad = _failures(zip(sample, pool.map(_subprocess, sample)))
    assert not bad, "\n".join(bad)
