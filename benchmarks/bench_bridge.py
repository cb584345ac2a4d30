"""``from_torch`` + ``score`` against the hook-based tools, on third-party models.

Usage::

    python benchmarks/bench_bridge.py                  # the whole corpus, 5 rounds
    python benchmarks/bench_bridge.py --rounds 3 --models kl_resnet18 ghostnet   # quick look

For every model of ``tests/corpus`` that nasflops translates (one built model
per file, batch 1, eval mode, one torch thread) it times, in the same process
and interleaved round-robin so that a load burst of the shared machine hits
every tool alike:

* ``nasflops``: :func:`nasflops.torch_bridge.from_torch` plus
  :func:`nasflops.score` under the ``thop`` convention (what a user runs to
  get one model's count);
* ``thop`` (``profile``), ``ptflops`` (``get_model_complexity_info``, its
  default pytorch backend), ``fvcore`` (``FlopCountAnalysis(...).total()``)
  and torch's ``FlopCounterMode`` (``fma2``), each as its README shows.

Per model, each time is the median of ``--rounds`` runs; the ratio is
nasflops' median over the fastest hook tool's (thop, ptflops, fvcore).  The
figure of merit is the median of that ratio over the corpus (at most 1: not
slower than the fastest hook tool).  It also checks that ``from_torch`` runs
the model once (forward calls of the root module) and that its counts equal
the tools' (the tests check that too, and more).

The last line is one JSON object; its keys:

=========================  ====================================================
``models``                 per model: ``name``, ``ms`` (``{tool: median ms}``),
                           ``ratio`` (nasflops over the fastest hook tool),
                           ``fastest`` (that tool), ``runs`` (forward calls of
                           one from_torch), ``exact`` (counts equal the tools')
``median_ratio``           median of ``ratio`` over the models
``faster_than_fastest``    models where ``ratio <= 1``
``median_ratio_vs``        ``{tool: median of nasflops / tool}``
``rounds``                 runs per median
``all_exact``, ``all_once``  every count equal / every model run once
=========================  ====================================================
"""
import argparse
import json
import os
import statistics
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))          # the repository root: tests.corpus

HOOK_TOOLS = ("thop", "ptflops", "fvcore")


def _tools():
    from tests.conftest import import_torchvision
    import_torchvision()                            # ptflops imports torchvision.ops
    from nasflops.torch_bridge import reference as ref
    return {"thop": lambda m, s: ref.thop_count(m, s)[0],
            "ptflops": lambda m, s: ref.ptflops_count(m, s)[0],
            "fvcore": ref.fvcore_count,
            "fma2": ref.flop_counter_count}


def _forward_calls(model, fn) -> int:
    n = [0]
    h = model.register_forward_pre_hook(lambda *a: n.__setitem__(0, n[0] + 1))
    try:
        fn()
    finally:
        h.remove()
    return n[0]


def _one_model(name: str, rounds: int, tools: dict) -> dict:
    import nasflops as nf
    from nasflops.torch_bridge import from_torch
    from tests import corpus
    model, shape = corpus.build(name)
    recs = from_torch(model, shape)              # warm-up: imports, first-call caches
    runs = _forward_calls(model, lambda: from_torch(model, shape))
    fns = {"nasflops": lambda: int(nf.score(from_torch(model, shape), convention="thop")["ops"][0])}
    fns.update({t: (lambda t=t: tools[t](model, shape)) for t in tools})
    times = {k: [] for k in fns}
    out = {}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            out[k] = fn()
            times[k].append(time.perf_counter() - t0)
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    fastest = min(HOOK_TOOLS, key=lambda t: ms[t])
    exact = all(out[t] == int(nf.score(recs, convention=t)["ops"][0]) for t in tools)
    return {"name": name, "ms": ms, "ratio": ms["nasflops"] / ms[fastest], "fastest": fastest,
            "runs": runs, "exact": exact}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="runs per median (default 5)")
    ap.add_argument("--models", nargs="*", help="corpus files (default: all it translates)")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import torch
    from tests import corpus
    torch.set_num_threads(1)
    tools = _tools()
    names = args.models or [n for n in corpus.NAMES if n not in corpus.UNSUPPORTED]
    rows = []
    for name in names:
        r = _one_model(name, args.rounds, tools)
        rows.append(r)
        print(f"{name:28s} " + " ".join(f"{k}={v:8.1f}ms" for k, v in r["ms"].items())
              + f"  ratio {r['ratio']:.2f} (vs {r['fastest']}) runs={r['runs']}"
              + ("" if r["exact"] else "  COUNTS DIFFER"), flush=True)
    med = statistics.median(r["ratio"] for r in rows)
    vs = {t: statistics.median(r["ms"]["nasflops"] / r["ms"][t] for r in rows) for t in tools}
    fig = {"models": rows, "median_ratio": med,
           "faster_than_fastest": sum(r["ratio"] <= 1 for r in rows), "median_ratio_vs": vs,
           "rounds": args.rounds, "all_exact": all(r["exact"] for r in rows),
           "all_once": all(r["runs"] == 1 for r in rows)}
    print(f"{len(rows)} models: from_torch + score takes a median {med:.2f}x the fastest hook "
          f"tool ({fig['faster_than_fastest']} of {len(rows)} at most 1x); median vs "
          + ", ".join(f"{t} {v:.2f}x" for t, v in vs.items()))
    print(json.dumps(fig))
    return 0 if fig["all_exact"] and fig["all_once"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
