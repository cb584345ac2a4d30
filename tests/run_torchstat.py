"""Run the real torchstat 0.0.7 in a fresh process and print what it computed, as JSON.

    python -m tests.run_torchstat < request.json > answer.json

torchstat must run in its own process: it replaces the ``__call__`` of every
leaf module class it sees (``nn.Conv2d``, ``nn.ReLU``, ...) and never restores
them, so a test process that ran it would count in every later torch call.

torchstat 0.0.7 calls ``DataFrame.append``, which pandas 2 removed; this
environment has numpy 2, and pandas < 2 needs numpy < 2, so the tests run
pandas 2 with ``tests/pandas_append_shim.py``, a port of pandas 1.5.3's
``DataFrame.append`` that gives the same rows, labels and dtypes (the report
text is byte-identical to pandas 1.5.3's).

The request is ``{"models": [torchvision model names], "nodes": {case: [rows]}}``:
each model is built as ``torchvision.models.<name>(weights=None)`` and run
through ``torchstat.stat(model, (3, 224, 224))``; each case's rows are fed
straight to ``torchstat.report_format`` (the renderer alone).  The answer
holds, per model and case, torchstat's per-module frame (every column, before
the totals row), its totals row and the text it prints.
"""
import contextlib
import io
import json
import sys

import numpy as np

COLUMNS = ["module name", "input shape", "output shape", "params", "memory(MB)", "MAdd",
           "Flops", "MemRead(B)", "MemWrite(B)", "duration[%]", "MemR+W(B)"]


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def _recording(pd):
    """Wrap DataFrame.append (torchstat calls it once) to keep its frame and totals row."""
    rec = {}
    append = pd.DataFrame.append

    def recording_append(self, other, *a, **k):
        rec["layers"], rec["total"] = self.copy(), other.copy()
        return append(self, other, *a, **k)

    pd.DataFrame.append = recording_append
    return rec


def _answer(rec, text):
    layers = rec["layers"]
    rows = [{c: _plain(layers[c].iloc[i]) for c in COLUMNS} for i in range(len(layers))]
    return {"rows": rows, "total": {k: _plain(v) for k, v in rec["total"].items()}, "text": text}


def run_model(name, tv, torchstat, pd):
    import torch
    torch.manual_seed(0)
    model = getattr(tv.models, name)(weights=None)
    rec = _recording(pd)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        torchstat.stat(model, (3, 224, 224))
    return _answer(rec, buf.getvalue())


def run_nodes(rows, torchstat, pd):
    """Rows of a nasflops report through torchstat's own renderer."""
    nodes = []
    for r in rows:
        nd = torchstat.StatNode(name=r["module name"])
        nd.input_shape, nd.output_shape = r["input"], r["output"]
        called = r["called"]
        # a never-called leaf keeps its zero buffers: int32 params, int64 memory
        nd.parameter_quantity = np.int64(r["params"]) if called else np.int32(0)
        nd.inference_memory = np.float32(r["memory(MB)"]) if called else np.int64(0)
        nd.MAdd, nd.Flops = np.int64(r["MAdd"]), np.int64(r["Flops"])
        nd.duration = np.float32(r["duration"])
        nd.Memory = [r["MemRead(B)"], r["MemWrite(B)"]]
        nodes.append(nd)
    rec = _recording(pd)
    text = torchstat.report_format(nodes)
    return _answer(rec, text + "\n")


def main():
    request = json.load(sys.stdin)
    import pandas as pd
    if not hasattr(pd.DataFrame, "append"):
        from tests import pandas_append_shim  # noqa: F401  (installs DataFrame.append)
    import torch
    torch.set_num_threads(1)                 # the machine is shared
    from tests.conftest import import_torchvision
    tv = import_torchvision() if request.get("models") else None
    import torchstat
    out = {"models": {}, "nodes": {}}
    for case, rows in request.get("nodes", {}).items():
        out["nodes"][case] = run_nodes(rows, torchstat, pd)
    for name in request.get("models", []):
        out["models"][name] = run_model(name, tv, torchstat, pd)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
