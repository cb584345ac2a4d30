"""nasflops' core against hook-based counting, on the same seeded candidates.

Usage::

    python benchmarks/bench_vs_hooks.py        # OFA-MBv3: 40 via torch, 200,000 via the core
    python benchmarks/bench_vs_hooks.py --n-hooks 3 --n-core 5000   # quick look
    python benchmarks/bench_vs_hooks.py --space nb201 --n-hooks 50
    python benchmarks/bench_vs_hooks.py --space vit --n-hooks 20 --n-core 20000

``--space vit`` draws DeiT-Tiny-like vision transformers at 224 x 224: the
zoo's ViT builder (torchvision's ``VisionTransformer``: patch 16, class token,
position embedding, ``nn.MultiheadAttention`` blocks) with a random depth
(6-12 blocks), heads (2-4, of 64 channels each: width 128-256) and MLP
ratio (2-4).

One run measures, on candidates ``0 .. n`` of one seeded sample of the space:

(a) ``to_torch`` + :func:`nasflops.torch_bridge.count_with_hooks` (MACs,
    params and every memory metric, from forward hooks on CPU tensors);
(b) the real thop (``profile``), ptflops (``get_model_complexity_info``,
    its default pytorch backend) and fvcore (``FlopCountAnalysis``), when
    installed, on the same ``to_torch`` models;
(c) the core, :func:`nasflops.score`, on candidates ``0 .. n_core`` of the
    same stream (one thread, then all cores).

Every hook-based count is compared with the core under the matching
convention (``macs`` + memory for (a), ``thop``/``ptflops``/``fvcore`` for
(b)); they must be identical.  Rates are architectures per second; a tool's
rate counts its counting only (the model already built, which favours the
tools), and ``*_build_per_s`` adds the ``to_torch`` build every hook-based
tool needs.  The speedup is the core's one-thread rate over the fastest
hook-based tool's counting-only rate.

The last line is one JSON object; its keys:

==============================  ===============================================
``space``, ``seed``             what was sampled
``n_hooks``, ``n_core``         candidates counted via torch / by the core
``core_per_s``                  core, one thread (best of 3)
``core_threads_per_s``          core, ``n_jobs=-1`` (best of 3)
``build_per_s``                 ``to_torch`` alone (CPU, random init)
``<tool>_per_s``                counting only; tools: ``hooks`` (a), ``thop``,
                                ``ptflops``, ``fvcore`` (b)
``<tool>_build_per_s``          build + counting
``fastest_hook_tool``           the tool with the highest ``<tool>_per_s``
``speedup``                     ``core_per_s / <fastest>_per_s`` (conservative:
                                the tool's model is already built)
``speedup_with_build``          ``core_per_s`` over the fastest
                                ``<tool>_build_per_s`` (what counting a spec
                                through torch costs)
``speedup_vs``                  ``{tool: core_per_s / <tool>_per_s}``
``speedup_vs_build``            ``{tool: core_per_s / <tool>_build_per_s}``
``identical``                   every hook-based count equals the core's
``mismatches``                  list of ``[tool, candidate, metric, core, tool]``
==============================  ===============================================

A mismatch is printed and makes the script exit with status 1.
"""
import argparse
import json
import os
import time

import nasflops as nf


def _rate(n, seconds):
    return n / seconds if seconds > 0 else float("inf")


def vit_candidates(n, seed):
    """``n`` DeiT-Tiny-like ViTs at 224 (see the module docstring), records
    built once per distinct configuration."""
    import numpy as np
    from nasflops.search_spaces.vision_transformers import _vit
    from nasflops.spec import SpecBatch
    rng = np.random.default_rng(seed)
    cache, out = {}, []
    for _ in range(int(n)):
        depth, heads, ratio = (int(rng.integers(6, 13)), int(rng.integers(2, 5)),
                               int(rng.integers(2, 5)))
        key = (depth, heads, ratio)
        if key not in cache:
            dim = 64 * heads
            cache[key] = _vit(16, depth, heads, dim, ratio * dim, 1000, 224).records
        out.append(cache[key])
    return SpecBatch.from_list(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="ofa-mbv3",
                    help="search space, 'random' or 'vit' (DeiT-Tiny-like ViTs)")
    ap.add_argument("--n-hooks", type=int, default=40, help="candidates counted through torch")
    ap.add_argument("--n-core", type=int, default=200_000, help="candidates counted by the core")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch
    from nasflops.torch_bridge import count_with_hooks, random_specs, to_torch
    from nasflops.torch_bridge import reference

    torch.set_num_threads(1)   # one thread everywhere, as the core's headline rate
    if args.space == "random":
        big = random_specs(max(args.n_core, args.n_hooks), seed=args.seed)
    elif args.space == "vit":
        big = vit_candidates(max(args.n_core, args.n_hooks), seed=args.seed)
    else:
        from nasflops.search_spaces import get_space
        big = get_space(args.space).sample(max(args.n_core, args.n_hooks), seed=args.seed)
    small = big[:args.n_hooks]
    n = len(small)

    # ---- (c) the core
    def best_of(fn, k=3):
        best = float("inf")
        for _ in range(k):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best
    nf.score(big[:min(1000, len(big))])  # warm-up (imports, joblib)
    t_core = best_of(lambda: nf.score(big, convention="macs", n_jobs=1))
    t_core_threads = best_of(lambda: nf.score(big, convention="macs", n_jobs=-1))
    core_per_s = _rate(len(big), t_core)
    core_threads_per_s = _rate(len(big), t_core_threads)
    print(f"core: {len(big):,} candidates of {args.space} in {t_core:.3f}s -> "
          f"{core_per_s:,.0f} arch/s (one thread), {core_threads_per_s:,.0f} arch/s "
          f"({os.cpu_count()} cpus)")

    # ---- (a), (b): build each candidate once, count it with every tool
    try:   # ptflops imports torchvision.ops, which the CUDA wheel needs help with
        import sys
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from tests.conftest import import_torchvision
        import_torchvision()
    except ImportError:
        pass
    tools = {"hooks": None}
    for name in ("thop", "ptflops", "fvcore"):
        try:
            __import__(name)
            tools[name] = getattr(reference, f"{name}_count")
        except ImportError:
            print(f"{name} not installed: skipped")
    seconds = dict.fromkeys(tools, 0.0)
    t_build = 0.0
    mismatches = []
    core_by = {}
    for conv in ("macs",) + tuple(t for t in tools if t != "hooks"):
        r = nf.score(small, convention=conv)
        core_by[conv] = {m: [int(v) for v in r[m]] for m in nf.METRICS}
    for i in range(n):
        recs = small[i]
        shape = tuple(int(recs[0][f]) for f in ("out_channels", "size_h", "size_w"))
        t0 = time.perf_counter()
        model = to_torch(recs)
        t_build += time.perf_counter() - t0
        for tool, fn in tools.items():
            t0 = time.perf_counter()
            if tool == "hooks":
                got = count_with_hooks(model, shape, "macs").as_dict()
            else:
                out = fn(model, shape)
                got = {"ops": out[0] if isinstance(out, tuple) else out}
                if tool == "ptflops":
                    got["params"] = out[1]
            seconds[tool] += time.perf_counter() - t0
            want = core_by["macs" if tool == "hooks" else tool]
            for m, v in got.items():
                if v != want[m][i]:
                    mismatches.append([tool, i, m, want[m][i], v])

    fig = {"space": args.space, "seed": args.seed, "n_hooks": n, "n_core": len(big),
           "core_per_s": core_per_s, "core_threads_per_s": core_threads_per_s,
           "build_per_s": _rate(n, t_build)}
    for tool, s in seconds.items():
        fig[f"{tool}_per_s"] = _rate(n, s)
        fig[f"{tool}_build_per_s"] = _rate(n, s + t_build)
        print(f"{tool:>8}: {fig[f'{tool}_per_s']:10.2f} arch/s counting, "
              f"{fig[f'{tool}_build_per_s']:8.2f} arch/s with to_torch")
    fastest = max(seconds, key=lambda t: fig[f"{t}_per_s"])
    fig["fastest_hook_tool"] = fastest
    fig["speedup"] = core_per_s / fig[f"{fastest}_per_s"]
    fastest_built = max(seconds, key=lambda t: fig[f"{t}_build_per_s"])
    fig["speedup_with_build"] = core_per_s / fig[f"{fastest_built}_build_per_s"]
    fig["speedup_vs"] = {t: core_per_s / fig[f"{t}_per_s"] for t in seconds}
    fig["speedup_vs_build"] = {t: core_per_s / fig[f"{t}_build_per_s"] for t in seconds}
    fig["identical"] = not mismatches
    fig["mismatches"] = mismatches
    for t in seconds:
        print(f"speedup vs {t}: {fig['speedup_vs'][t]:,.0f}x counting only, "
              f"{fig['speedup_vs_build'][t]:,.0f}x with to_torch")
    print(f"core vs fastest hook-based tool ({fastest}): {fig['speedup']:,.0f}x counting only, "
          f"{fig['speedup_with_build']:,.0f}x including to_torch; counts "
          + ("identical on every candidate" if not mismatches else f"DIFFER: {mismatches[:5]}"))
    print(json.dumps(fig))
    if mismatches:
        import sys
        print(f"{len(mismatches)} count(s) differ from the core", file=sys.stderr)
    return 0 if not mismatches else 1


if __name__ == "__main__":
    raise SystemExit(main())
