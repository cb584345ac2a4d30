"""The ``nasflops`` command line (also ``python -m nasflops``).

Every subcommand prints what it counts under a named convention, takes
human units (``300M``, ``4.1G``, ``2MiB``) and reports user mistakes as one
line on stderr with a non-zero exit code.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import operator
import os
import sys
import warnings
from typing import Optional, Sequence

from ._version import __version__

EXIT_USER_ERROR = 2
EXIT_MISMATCH = 1
#: bounds of user-given sizes (ScoringOptions refuses larger batches too)
MAX_BATCH = 1 << 31
MAX_SEED = (1 << 62)
#: elements of a torch model's trial input (2**27 fp32 values: 512 MiB)
MAX_INPUT_ELEMENTS = 1 << 27

MAIN_EPILOG = """\
examples:
  nasflops spaces                                    list search spaces and their sizes
  nasflops count resnet50                            per-layer table of a zoo model
  nasflops count vgg16 --report torchstat            torchstat's per-module report, exactly
  nasflops count '|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'
  nasflops score nb201 --all -o nb201.parquet        score all 15,625 NAS-Bench-201 cells
  nasflops score ofa-mbv3 -n 1M --seed 0 -o ofa.parquet -j 2
  nasflops count llama-2-7b --phase decode --context 4096 --dtype bf16 --device a100-bf16
  nasflops score llm -n 100k --phase decode --context 4096 -c fma2 --dtype bf16 -o llm.parquet
  nasflops stats ofa.parquet --by r --plot ofa.png   distributions, per-resolution medians, a plot
  nasflops filter ofa.parquet --max-macs 300M --max-params 5M -o small.parquet
  nasflops validate nb201 -n 20                      check the core against PyTorch hooks
  nasflops profile ofa-mbv3 --metric params --by r   exact distribution over the whole space
  nasflops score ofa-mbv3 -n 1000 --max-macs 120M -o small.parquet   uniform within a budget, exactly

Counting conventions (--convention): macs (default), flops, fma2, and the
tool-compatible ones; see 'nasflops count MODEL --all-conventions'.
"""


class UserError(Exception):
    """A mistake on the command line: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (with where to get help)."""

    def error(self, message):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# ----------------------------------------------------------------- helpers
def _one_line(e) -> str:
    """An error message on one line (some libraries' messages span several)."""
    return " ".join(str(e).split()) or type(e).__name__


def _os_message(e: OSError) -> str:
    if e.strerror and e.filename is not None:
        return f"{e.strerror}: {e.filename}"
    return _one_line(e)


def _console():
    from rich.console import Console
    return Console(highlight=False, soft_wrap=False, width=max(100, _terminal_width()))


def _terminal_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 140


def _space_params(pairs: Sequence[str]) -> dict:
    params = {}
    for p in pairs or ():
        if "=" not in p:
            raise UserError(f"space parameter {p!r} must look like key=value (e.g. dataset=cifar100)")
        k, v = p.split("=", 1)
        try:
            params[k] = json.loads(v)
        except json.JSONDecodeError:
            params[k] = v
    return params


def _get_space(name: str, params: dict):
    from .search_spaces import get_space
    try:
        return get_space(name, **params)
    except TypeError as e:
        raise UserError(f"space {name!r}: {e}") from None


def _int_arg(lo: int, hi: int, name: str = "an integer"):
    """An argparse type: an integer in ``lo..hi`` (no floats, no units)."""
    def parse(text: str) -> int:
        try:
            v = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer in {lo:,}..{hi:,}, "
                                             f"got {_short(text)}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be in {lo:,}..{hi:,}, got {_short(text)}")
        return v
    parse.__name__ = name        # argparse names the type in its messages
    return parse


def _jobs_arg(text: str) -> int:
    """joblib's n_jobs: 1..1024 workers, or -1 (all cores) .. -1024; never 0."""
    v = _int_arg(-1024, 1024, "jobs")(text)
    if v == 0:
        raise argparse.ArgumentTypeError("jobs must be >= 1, or negative for all cores but "
                                         "(-jobs - 1); 0 is not a number of workers")
    return v


def _short(text, limit: int = 40) -> str:
    text = repr(text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _seconds_arg(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"seconds must be a number >= 0, got {_short(text)}")
    return v


def _count_arg(text: str) -> int:
    from .units import parse_count
    try:
        return parse_count(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _bytes_arg(text: str) -> int:
    from .units import parse_bytes
    try:
        return parse_bytes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _convention(args) -> str:
    """``--convention``, macs when not given (``None`` tells a report that
    it was not given)."""
    return args.convention or "macs"


def _add_scoring_options(p: argparse.ArgumentParser) -> None:
    from .conventions import CONVENTIONS
    from .options import MEMORY_SEMANTICS
    p.add_argument("--convention", "-c", default=None,
                   help=f"what 'ops' counts: {', '.join(CONVENTIONS)} (default: macs)")
    p.add_argument("--memory", default=None, choices=MEMORY_SEMANTICS,
                   help="what the byte metrics count: nasflops (buffers allocated, bytes every op "
                        "moves) or torchstat (its memory, MemRead, MemWrite) (default: nasflops)")
    p.add_argument("--batch-size", "-b", type=_int_arg(1, MAX_BATCH, "batch size"), default=1,
                   metavar="B",
                   help="samples per forward pass; multiplies every count but params (default: 1)")
    p.add_argument("--dtype", default=None, metavar="D",
                   help="element type of weights and activations: fp32, fp16, bf16, int8 (default: fp32)")
    p.add_argument("--weight-dtype", default=None, metavar="D", help="weights only (overrides --dtype)")
    p.add_argument("--act-dtype", default=None, metavar="D", help="activations only (overrides --dtype)")


def _dtypes(args) -> tuple[str, str]:
    base = args.dtype or "fp32"
    return args.weight_dtype or base, args.act_dtype or base


def _add_phase_options(p: argparse.ArgumentParser) -> None:
    from .options import CAUSAL_COUNTS, PHASES
    p.add_argument("--phase", default=None, choices=PHASES,
                   help="the pass: prefill (a prompt of --seq-len tokens), decode (one token after "
                        "--context cached ones) or train (forward + backward) for a language model; "
                        "forward or train for any network (default: prefill / forward)")
    p.add_argument("--seq-len", type=_int_arg(1, 1 << 24, "seq-len"), default=None, metavar="L",
                   help="language models: tokens per sequence in prefill and train (default: 2048, "
                        "or the model's learned positions)")
    p.add_argument("--context", type=_int_arg(0, 1 << 24, "context"), default=None, metavar="T",
                   help="language models, decode: tokens already cached (default: 2048, or the "
                        "model's learned positions - 1)")
    p.add_argument("--logits", default=None, choices=("all", "last"),
                   help="language models, prefill: logits of every position (as a forward pass "
                        "computes them; default) or of the last (generation)")
    p.add_argument("--causal", default="full", choices=CAUSAL_COUNTS,
                   help="causal attention counted in full (the score rectangle torch computes, as "
                        "FlopCounterMode counts) or half (only the keys at or before each query, as "
                        "Megatron and MaxText count) (default: full)")


def _lm_params(args, positions: int = 0) -> dict:
    """A language model's workload from --phase/--seq-len/--context/--logits."""
    phase = args.phase or "prefill"
    if phase == "forward":
        raise UserError("a language model's pass is prefill, decode or train (--phase)")
    default = 2048 if not positions else min(2048, positions - (phase == "decode"))
    if phase == "decode":
        if args.seq_len is not None or args.logits is not None:
            raise UserError("--phase decode runs one new token after --context cached ones: drop "
                            "--seq-len and --logits")
        return {"phase": phase, "context": default if args.context is None else args.context}
    if args.context is not None:
        raise UserError(f"--phase {phase} runs --seq-len tokens from the start: drop --context")
    if phase == "train" and args.logits == "last":
        raise UserError("training computes the loss on every position: drop --logits last")
    p = {"phase": phase, "seq_len": default if args.seq_len is None else args.seq_len}
    if args.logits is not None:
        p["logits"] = args.logits
    return p


def _not_language_model(args) -> None:
    """Refuse language-model options for another network."""
    given = [f"--{n.replace('_', '-')}" for n in ("seq_len", "context", "logits")
             if getattr(args, n, None) is not None]
    if args.phase in ("prefill", "decode"):
        given.insert(0, f"--phase {args.phase}")
    if given:
        raise UserError(f"{', '.join(given)}: options of a language model's pass; this network "
                        "is scored as a forward pass (--phase forward) or a training step "
                        "(--phase train)")


# ----------------------------------------------------------------- spaces
def cmd_spaces(args) -> int:
    from rich.table import Table

    from .search_spaces import list_spaces
    spaces = list_spaces()
    if args.json:
        print(json.dumps(spaces, indent=2, default=str))
        return 0
    t = Table(title="nasflops search spaces", show_lines=True)
    for col in ("name", "size", "native encoding", "reference"):
        t.add_column(col, overflow="fold")
    for s in spaces:
        size = s["size"]
        shown = "-" if size is None else f"{size:,}" if size < 10**9 else f"{size:.3g}"
        t.add_row(s["name"], shown,
                  s["native"], s["reference"])
    _console().print(t)
    return 0


# ----------------------------------------------------------------- score
def _space_for_phase(name: str, args):
    """The space, built for the phase the options ask (a language-model
    space's workload is a parameter); other spaces take forward or train."""
    params = _space_params(args.param)
    space = _get_space(name, params)
    if space.phase == "forward":
        _not_language_model(args)
        return space, args.phase
    given = {k: getattr(args, k) for k in ("phase", "seq_len", "context", "logits")
             if getattr(args, k) is not None}
    return (_get_space(name, {**params, **given}) if given else space), None


def cmd_score(args) -> int:
    from .pipeline import score_space

    space, phase = _space_for_phase(args.space, args)
    if args.all == (args.n is not None):
        raise UserError("give either -n N (sample N candidates) or --all (enumerate the space)")
    if args.all and not space.enumerable:
        raise UserError(f"space {space.name!r} is too large to enumerate; sample it with -n N")
    budget = _budget_of(args)
    if budget is not None and args.all:
        raise UserError("a budget draws -n N candidates within it; --all enumerates the space")
    wdt, adt = _dtypes(args)
    with warnings.catch_warnings():     # repaired parts are reported below, in one line each
        warnings.simplefilter("ignore", RuntimeWarning)
        run = score_space(space, n="all" if args.all else args.n, seed=args.seed, out=args.out,
                          convention=_convention(args), batch_size=args.batch_size,
                          weight_dtype=wdt, act_dtype=adt, chunk_size=args.chunk_size,
                          n_jobs=args.jobs, progress=not args.no_progress, resume=args.resume,
                          overwrite=args.overwrite, memory=args.memory or "nasflops", phase=phase,
                          causal=args.causal, within=budget, over=args.over)
    con = _console()
    con.print(f"[bold]{run.n:,}[/] candidates of [bold]{space.name}[/] ({run.metadata['phase']}) in {run.path} "
              f"({run.parts_written} part(s) written, {run.parts_resumed} resumed, "
              f"{run.seconds:.1f} s, {run.rate:,.0f} candidates/s)")
    for name, why in run.parts_repaired:
        con.print(f"[yellow]rewrote {name}: it failed verification ({why})[/]")
    if run.n_invalid:
        con.print(f"[yellow]{run.n_invalid:,} invalid candidates (status != 0)[/]")
    data = _open_results(run.path)
    extra = tuple(m for m in ("active_params", "kv_cache_bytes") if m in data.schema.names)
    _print_summary(con, data, metrics=("ops", "macs", "params") + extra + ("peak_act_bytes", "read_bytes"))
    return 0


def _open_results(path):
    """The results dataset at ``path``, opened (and verified) once per command."""
    from .storage import open_dataset

    _need_results(path)
    return open_dataset(path)


_SUMMARY_Q = {"min": 0.0, "median": 0.5, "max": 1.0}
_STATS_Q = {"min": 0.0, "5%": 0.05, "25%": 0.25, "median": 0.5, "75%": 0.75, "95%": 0.95, "max": 1.0}


def _print_summary(con, data, metrics=("ops", "macs", "params", "peak_act_bytes", "read_bytes"),
                   qs=_SUMMARY_Q) -> int:
    """Print quantiles per metric; return the number of valid candidates."""
    from rich.table import Table

    from .analytics import quantiles
    from .storage import read_metadata
    from .units import format_bytes, format_count
    meta = read_metadata(data)
    conv, unit = meta.get("convention", "?"), meta.get("unit", "")
    q = quantiles(data, metrics, q=list(qs.values()))
    n_valid = _count_valid(data)
    phase = meta.get("phase", "forward")
    t = Table(title=f"{n_valid:,} valid candidates; ops under convention '{conv}' ({unit})"
                    + ("" if phase == "forward" else f", phase {phase}"))
    t.add_column("metric")
    for c in qs:
        t.add_column(c, justify="right")
    for m in metrics:
        vals = q[m].to_pylist()
        count_unit = {"ops": unit, "macs": "MACs"}.get(m, "")
        cells = ["-" if v != v else format_bytes(round(v)) if m.endswith("_bytes")
                 else format_count(round(v), count_unit) for v in vals]
        t.add_row(f"ops ({conv})" if m == "ops" else m, *cells)
    con.print(t)
    return n_valid


def _count_valid(dataset) -> int:
    import pyarrow.dataset as ds

    return dataset.count_rows(filter=ds.field("status") == 0)


# ----------------------------------------------------------------- count
def _resolve_target(args):
    """``(records, label, names, modules)`` of one network from a zoo name, a
    native encoding or a .py file; ``names``/``modules`` are None where the
    source has no module names."""
    target = args.target
    params = _space_params(args.param)
    if target.endswith(".py"):
        if not os.path.exists(target):
            raise UserError(f"no such file: {target}")
        records, names = _records_from_python(target, args.input_shape)
        return records, os.path.basename(target), names, None
    if args.space:
        space = _get_space(args.space, params)
    elif target.startswith("|"):
        space = _get_space("nb201", params)
    elif target.lstrip().startswith("{"):
        space = _get_space("ofa-mbv3", params)
    else:
        space = _get_space("zoo", params)
        from .search_spaces import zoo
        if target not in zoo.MODELS:
            raise UserError(f"unknown model {target!r}: give a zoo model ({', '.join(zoo.MODELS)}), "
                            "a native encoding (NB201 string, OFA JSON), or a .py file with a torch model")
    native = target
    if target.lstrip().startswith("{"):
        try:
            native = json.loads(target)
        except json.JSONDecodeError as e:
            raise UserError(f"not valid JSON: {e}") from None
    batch = space.encode([native])
    label = f"{space.name} {target if len(target) < 60 else target[:57] + '...'}"
    if space.name == "zoo" and isinstance(native, str):
        from .search_spaces import zoo
        kw = {"resolution": space.resolution, "num_classes": space.num_classes}
        _, names = zoo.build(native, with_names=True, **kw)
        return batch[0], label, names, zoo.modules(native, **kw)
    return batch[0], label, None, None


def _records_from_python(path: str, input_shape: Optional[str]):
    import importlib.util

    try:
        from .torch_bridge import translate
    except ImportError as e:
        raise UserError(f"counting a torch model needs torch: pip install 'nasflops[torch]' ({e})") from None
    # the file is the user's code, run as `python FILE.py` would run it: any
    # exception it raises (or SystemExit) is its author's, reported in one line
    with _user_code(path, "running"):
        spec = importlib.util.spec_from_file_location("_nasflops_user_model", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        if hasattr(mod, "model"):
            model = mod.model
        elif hasattr(mod, "build_model"):
            model = mod.build_model()
        else:
            raise UserError(f"{path} must define `model` (an nn.Module) or `build_model()`")
    if not callable(getattr(model, "eval", None)):
        raise UserError(f"{path}: `model` must be a torch nn.Module, got {type(model).__name__}")
    shape = _input_shape(input_shape or getattr(mod, "INPUT_SHAPE", None), path)
    with _user_code(path, "tracing the model of"):
        t = translate(model.eval(), shape)
    if t.unused:
        unused = ", ".join(f"{n} ({k:,})" for n, k in t.unused)
        print(f"note: {t.params_total - t.params_run:,} of {t.params_total:,} parameters never run "
              f"and are not counted: {unused}", file=sys.stderr)
    from .spec import Call
    # module paths name module calls (torchstat's rows); other calls are unnamed
    names = [n if r["call"] == Call.MODULE and ":" not in n and i else ""
             for i, (r, n) in enumerate(zip(t.records, t.names))]
    return t.records, names


@contextlib.contextmanager
def _user_code(path: str, doing: str):
    """Turn what the user's model code raises into one :class:`UserError` line."""
    try:
        yield
    except UserError:
        raise
    except (Exception, SystemExit) as e:
        where = ""
        tb = e.__traceback__
        while tb is not None:               # the innermost frame in the user's file
            if os.path.abspath(tb.tb_frame.f_code.co_filename) == os.path.abspath(path):
                where = f" (line {tb.tb_lineno})"
            tb = tb.tb_next
        raise UserError(f"{doing} {path} failed{where}: {type(e).__name__}: {_one_line(e)}") from None


def _input_shape(shape, path: str) -> tuple:
    """``C,H,W`` (or a tuple) checked: positive sizes, a trial input of bounded size."""
    if shape is None:
        raise UserError(f"give --input-shape C,H,W (or define INPUT_SHAPE in {path})")
    try:
        if isinstance(shape, str):
            shape = tuple(int(v) for v in shape.replace("x", ",").split(","))
        shape = tuple(operator.index(v) for v in shape)
    except (TypeError, ValueError):
        raise UserError(f"the input shape must look like 3,224,224, got {_short(shape)}") from None
    if len(shape) not in (3, 4) or min(shape) < 1 or math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise UserError(f"the input shape must be C,H,W (or N,C,H,W) of positive sizes and at "
                        f"most {MAX_INPUT_ELEMENTS:,} elements, got {_short(shape)}")
    return shape


def _count_torchstat(args, records, names, modules) -> int:
    """``count --report torchstat``: torchstat's table, batch 1, fp32."""
    from .reports import torchstat_report

    wdt, adt = _dtypes(args)
    if args.batch_size != 1 or (wdt, adt) != ("fp32", "fp32"):
        raise UserError("--report torchstat is torchstat's report: batch 1, fp32 "
                        "(drop --batch-size and --dtype)")
    if args.convention is not None or args.memory not in (None, "torchstat") or args.top:
        raise UserError("--report torchstat counts under torchstat's own rules: drop --convention, "
                        "--memory and --top")
    report = torchstat_report(records, names, modules, device=args.device or "t4")
    sys.stdout.write(report.text)
    return 0


def _lm_target(args):
    """``(records, names, layer, label, config, workload)`` when the target is
    a language model (a zoo name, or a native of a language-model --space),
    else None."""
    from .search_spaces import language_models as lm

    if args.space is None:
        if args.target not in lm.MODELS and args.target not in lm.ALIASES:
            return None
        cfg = lm.get_config(args.target)
        p = _lm_params(args, cfg.positions)
        w = lm.Workload.make(p["phase"], p.get("seq_len"), p.get("context"), p.get("logits"))
    else:
        space, _ = _space_for_phase(args.space, args)
        if space.phase == "forward":
            return None
        try:
            native = json.loads(args.target)
        except json.JSONDecodeError as e:
            raise UserError(f"a {space.name} candidate is a JSON object: {e}") from None
        cfg, w = space.config(native), space.workload
    records, names, layer = lm.decoder_records(cfg, w)
    return records, names, layer, cfg.name, cfg, w


def cmd_count(args) -> int:
    from rich.table import Table

    from .conventions import CONVENTIONS, get_convention
    from .scoring import layer_table, score
    from .units import format_bytes, format_count

    target = _lm_target(args)
    if target is not None:
        return _count_lm(args, *target)
    _not_language_model(args)
    records, label, names, modules = _resolve_target(args)
    if args.report == "torchstat":
        return _count_torchstat(args, records, names, modules)
    wdt, adt = _dtypes(args)
    conv = get_convention(_convention(args))
    mem = args.memory or "nasflops"
    device = None if args.device is None else _device(args.device)
    if device is not None and conv.unit != "FLOPs":
        raise UserError(f"the device profiles give FLOP/s: with --device, count FLOPs "
                        f"(--convention flops or fma2), not {conv.unit} ('{conv.name}')")
    con = _console()
    if args.all_conventions:
        t = Table(title=f"{label}: totals under every convention (batch {args.batch_size})")
        t.add_column("convention")
        t.add_column("total", justify="right")
        t.add_column("what it counts (why totals differ)", overflow="fold")
        for name, c in CONVENTIONS.items():
            r = score(records, convention=c, batch_size=args.batch_size, weight_dtype=wdt, act_dtype=adt,
                      memory=mem, phase=args.phase or "forward", causal=args.causal)
            t.add_row(name, format_count(r["ops"][0], c.unit), c.description)
        con.print(t)
        _note_attention_modes(records)
        return 0
    phase = args.phase or "forward"
    tab = layer_table(records, convention=conv, batch_size=args.batch_size, weight_dtype=wdt, act_dtype=adt,
                      memory=mem, phase=phase, causal=args.causal)
    tot = score(records, convention=conv, batch_size=args.batch_size, weight_dtype=wdt, act_dtype=adt,
                memory=mem, device=device, phase=phase, causal=args.causal)[0]
    total_ops = int(tot["ops"])
    t = Table(title=f"{label} - ops under convention '{conv.name}' ({conv.unit}), batch {args.batch_size}, "
                    f"weights {wdt}, activations {adt}" + ("" if mem == "nasflops" else f", {mem} memory")
                    + ("" if phase == "forward" else f", phase {phase} (forward + backward)"))
    for col, just in (("#", "right"), ("layer", "left"), ("inputs", "left"), ("output CxHxW", "right"),
                      (conv.unit, "right"), ("share", "right"), ("params", "right"),
                      ("act", "right"), ("read", "right"), ("write", "right"), ("live", "right")):
        t.add_column(col, justify=just)
    rows = tab if not args.top else tab[sorted(range(len(tab)), key=lambda i: -int(tab["ops"][i]))[: args.top]]
    for r in rows:
        share = f"{100 * int(r['ops']) / total_ops:.1f}%" if total_ops else "-"
        t.add_row(str(r["layer"]), str(r["op"]), str(r["inputs"]),
                  f"{r['channels']}x{r['height']}x{r['width']}", format_count(r["ops"]), share,
                  format_count(r["params"]), format_bytes(r["act_bytes"]), format_bytes(r["read_bytes"]),
                  format_bytes(r["write_bytes"]), format_bytes(r["live_bytes"]))
    t.add_section()
    t.add_row("", "[bold]total[/]", "", "", f"[bold]{format_count(total_ops)}[/]", "100%",
              f"[bold]{format_count(tot['params'])}[/]", format_bytes(tot["act_bytes"]),
              format_bytes(tot["read_bytes"]), format_bytes(tot["write_bytes"]),
              f"peak {format_bytes(tot['peak_act_bytes'])}")
    con.print(t)
    macs = "" if conv.name == "macs" else f", {format_count(tot['macs'], 'MACs')}"
    con.print(f"[bold]{label}[/]: {format_count(total_ops, conv.unit)} ({conv.name}){macs}, "
              f"{int(tot['params']):,} params ({format_bytes(tot['weight_bytes'])} of {wdt} weights)")
    con.print(f"activations: peak {format_bytes(tot['peak_act_bytes'])}, written "
              f"{format_bytes(tot['act_bytes'])}; memory traffic "
              f"{format_bytes(int(tot['read_bytes']) + int(tot['write_bytes']))} (read + write)")
    if device is not None:
        con.print(f"roofline latency on {device.name}: {float(tot['latency_s']) * 1e3:.4g} ms "
                  f"({device.peak_ops_per_s / 1e12:g} TFLOP/s, {device.bytes_per_s / 1e9:g} GB/s; "
                  f"{device.source})")
    return 0


_LM_COLUMNS = ("ops", "params", "kv_cache_bytes", "read_bytes", "write_bytes")


def _lm_rows(tab, names, layer, all_layers: bool):
    """Rows to show: everything, or the first decoder layer's records and one
    row summing the other layers (``(label, row or None, summed columns)``)."""
    import numpy as np
    rows, n_layers = [], int(layer.max())
    for i in range(len(tab)):
        lay = int(layer[i])
        if all_layers or lay <= 0 or lay >= n_layers:
            rows.append((names[i] or str(tab["op"][i]), tab[i], None))
        if not all_layers and lay == 1 and (i + 1 == len(tab) or layer[i + 1] != 1) and n_layers > 1:
            rest = (layer >= 1) & (layer < n_layers)
            sums = {c: int(np.asarray(tab[c])[rest].sum()) for c in _LM_COLUMNS}
            rows.append((f"decoder layers 1-{n_layers - 1} ({n_layers - 1} more, summed)", None, sums))
    return rows


def _lm_table(title: str, unit: str, rows, total_ops: int):
    from rich.table import Table

    from .units import format_bytes, format_count
    t = Table(title=title)
    for col, just in (("#", "right"), ("module (op)", "left"), ("output", "right"),
                      (unit, "right"), ("share", "right"), ("params", "right"),
                      ("KV cache", "right"), ("read", "right"), ("write", "right")):
        t.add_column(col, justify=just, **({"overflow": "fold", "min_width": 36}
                                           if col.startswith("module") else {}))
    for label, r, sums in rows:
        v = sums if r is None else {c: int(r[c]) for c in _LM_COLUMNS}
        share = f"{100 * v['ops'] / total_ops:.1f}%" if total_ops else "-"
        if r is None:
            num, out = "", ""
        else:
            g, c, h, w = (int(r[k]) for k in ("groups", "channels", "height", "width"))
            out = (f"{'' if g == 1 else f'{g} x '}{h * w} tok x {c}" if int(r["layout"]) == 1
                   else f"{c}x{h}x{w}")
            num = str(r["layer"])
            label = label if label == str(r["op"]) else f"{label} ({r['op']})"
        t.add_row(num, label, out, format_count(v["ops"]), share, format_count(v["params"]),
                  format_bytes(v["kv_cache_bytes"]) if v["kv_cache_bytes"] else "",
                  format_bytes(v["read_bytes"]), format_bytes(v["write_bytes"]))
    return t


def _count_lm(args, records, names, layer, label, cfg, w) -> int:
    """``count`` of a language model: its layers, then params (total and
    active), KV cache, per-token ops and bytes, and the roofline on a device."""
    from .conventions import get_convention
    from .scoring import layer_table, score
    from .search_spaces.language_models import tokens_per_pass
    from .units import format_bytes, format_count

    if args.report != "nasflops" or args.all_conventions:
        raise UserError("a language model is counted with its own table: drop --report and "
                        "--all-conventions (compare conventions with -c)")
    wdt, adt = _dtypes(args)
    conv = get_convention(args.convention or "fma2")
    device = None if args.device is None else _device(args.device)
    if device is not None and conv.unit != "FLOPs":
        raise UserError(f"the device profiles give FLOP/s: with --device, count FLOPs "
                        f"(--convention fma2 or flops), not {conv.unit} ('{conv.name}')")
    kw = dict(convention=conv, batch_size=args.batch_size, weight_dtype=wdt, act_dtype=adt,
              memory=args.memory or "nasflops", phase=w.phase, causal=args.causal)
    tot = score(records, device=device, **kw)[0]
    tab = layer_table(records, **kw)
    what = {"prefill": f"prefill of {w.tokens:,} tokens", "train": f"training step on {w.tokens:,} tokens",
            "decode": f"decode of one token after {w.past:,} cached"}[w.phase]
    title = (f"{label}: {what}, batch {args.batch_size}; ops under '{conv.name}' ({conv.unit}), causal "
             f"attention {args.causal}; weights {wdt}, activations and KV cache {adt}")
    con = _console()
    con.print(_lm_table(title, conv.unit, _lm_rows(tab, names, layer, args.all_layers), int(tot["ops"])))
    toks = tokens_per_pass(w, args.batch_size)
    moved = int(tot["read_bytes"]) + int(tot["write_bytes"])
    con.print(f"[bold]{label}[/] ({w.phase}): {int(tot['params']):,} params "
              f"({format_bytes(tot['weight_bytes'])} of {wdt} weights), {int(tot['active_params']):,} "
              "active per token")
    if int(tot["kv_cache_bytes"]):
        con.print(f"KV cache after the pass: {format_bytes(tot['kv_cache_bytes'])} "
                  f"({w.past_for(cfg) + w.tokens:,} tokens per sequence x {args.batch_size})")
    con.print(f"per token ({toks:,} per pass): {format_count(int(tot['ops']) // toks, conv.unit)} "
              f"({conv.name}), {format_bytes(moved // toks)} read + written; per pass "
              f"{format_count(tot['ops'], conv.unit)}, {format_bytes(moved)}")
    if w.phase == "train":
        con.print(f"training memory: weights {format_bytes(tot['weight_bytes'])}, gradients "
                  f"{format_bytes(tot['grad_bytes'])}, Adam {format_bytes(tot['optimizer_bytes'])}; "
                  f"activations kept {format_bytes(tot['saved_act_bytes'])}, "
                  f"{format_bytes(tot['recompute_act_bytes'])} with full recomputation")
    if device is not None:
        lat = float(tot["latency_s"])
        con.print(f"roofline on {device.name}: {lat * 1e3:.4g} ms per pass, "
                  f"{toks / lat:,.1f} tokens/s ({device.peak_ops_per_s / 1e12:g} TFLOP/s, "
                  f"{device.bytes_per_s / 1e9:g} GB/s; {device.source})")
    return 0


def _device(name: str):
    from .options import get_device
    try:
        return get_device(name)
    except ValueError as e:
        raise UserError(str(e)) from None


def _note_attention_modes(records) -> None:
    """After the totals of a network with attention: the tool rows assume
    autograd on, and torch's inference fast path hides attention from them."""
    import numpy as np

    from .spec import Op
    n = int(np.isin(np.asarray(records["op"]), (int(Op.MHA), int(Op.ATTENTION))).sum())
    if n:
        print(f"note: {n} attention records. The thop, ptflops and fvcore rows are those tools on "
              "the model run with autograd on; under torch.no_grad() or inference_mode "
              "nn.MultiheadAttention takes its fused fast path, which fvcore and FlopCounterMode "
              "count as 0 (thop counts it 0 always), and CPU scaled_dot_product_attention has no "
              "FLOP formula in any of them. nasflops counts the architecture, so the run mode "
              "never changes its numbers (README: Transformers and attention).")


# ----------------------------------------------------------------- validate
def cmd_validate(args) -> int:
    try:
        from .torch_bridge import validate
    except ImportError as e:
        raise UserError(f"validate needs torch: pip install 'nasflops[torch]' ({e})") from None
    # 'random' / 'random-transformer': random DAGs of every op, or of every token and
    # attention op (nasflops.torch_bridge.random_specs, random_transformer_specs)
    space = (args.space if args.space in ("random", "random-transformer")
             else _get_space(args.space, _space_params(args.param)))
    report = validate(space, samples=args.n, convention=args.convention, seed=args.seed,
                      batch_size=args.batch_size, device=args.device)
    print(report)
    return 0 if report.ok else EXIT_MISMATCH


# ----------------------------------------------------------------- stats
def cmd_stats(args) -> int:
    from rich.table import Table

    from .analytics import group_by, histogram
    from .units import format_bytes, format_count

    data = _open_results(args.results)
    missing = [c for c in args.metrics + [args.by, args.metric] if c and c not in data.schema.names]
    if missing:   # before any output: one line, not half a report
        raise UserError(f"{args.results} has no field {', '.join(map(repr, missing))}; it has "
                        f"{', '.join(data.schema.names)}")
    con = _console()
    n_valid = _print_summary(con, data, metrics=tuple(args.metrics), qs=_STATS_Q)
    con.print(f"histograms ({args.bins} bins, valid candidates):")
    for m in args.metrics:
        counts, edges = histogram(data, m, bins=args.bins)
        _print_histogram(con, m, counts, edges, format_bytes if m.endswith("_bytes") else format_count)
    if args.by:
        g = group_by(data, args.by, metric=args.metric)
        shown = g.slice(0, args.limit)
        more = g.num_rows - shown.num_rows
        t = Table(title=f"{args.metric} by {args.by} ({g.num_rows:,} groups)",
                  caption=f"... {more:,} more groups (--limit)" if more > 0 else None)
        for c in g.column_names:
            t.add_column(c, justify="right")
        for row in shown.to_pylist():
            t.add_row(*(_cell(v) for v in row.values()))
        con.print(t)
    if args.plot:
        try:
            from .plots import plot_distributions
        except ImportError as e:
            raise UserError(f"--plot needs matplotlib: pip install 'nasflops[plot]' ({e})") from None
        from .storage import read_metadata
        meta = read_metadata(data)
        space = (meta.get("space") or {}).get("name") or os.path.basename(os.path.normpath(args.results))
        title = f"{space}: {n_valid:,} valid candidates"
        out = plot_distributions(data, args.plot, title=title)
        con.print(f"plot written to {out}")
    return 0


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if v == v else "-"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _print_histogram(con, metric, counts, edges, fmt, width: int = 50):
    import numpy as np
    counts = np.asarray(counts)
    if counts.size == 0 or counts.sum() == 0:
        return
    blocks = " ▁▂▃▄▅▆▇█"
    top = counts.max()
    spark = "".join(blocks[int(round(8 * c / top))] if c else " " for c in counts)
    con.print(f"{metric:>16} {fmt(edges[0]):>12} {spark} {fmt(edges[-1])}")


def _need_results(path):
    if not os.path.exists(path):
        raise UserError(f"no such results dataset: {path}")


# ----------------------------------------------------------------- profile
def _budget_of(args):
    """The budget of the --max-* flags (None without any)."""
    from .budget import Budget
    limits = dict(max_macs=args.max_macs, max_flops=args.max_flops, max_params=args.max_params,
                  max_peak_act_bytes=args.max_peak_act_bytes)
    if all(v is None for v in limits.values()):
        return None
    return Budget(**limits, flops_convention=_convention(args))


def _big(n: int) -> str:
    """An exact count, with its order of magnitude when long."""
    return f"{n:,}" + (f" ({n:.3g})" if n >= 10**7 else "")


def _native(native) -> str:
    return native if isinstance(native, str) else json.dumps(native, separators=(",", ":"))


def cmd_profile(args) -> int:
    """``nasflops profile``: the exact distribution of a metric over a whole space."""
    from .search_spaces.dists import TooLarge
    from .search_spaces.profiles import Within
    from .units import format_bytes, format_count

    space = _get_space(args.space, _space_params(args.param))
    wdt, adt = _dtypes(args)
    kw = dict(batch_size=args.batch_size, weight_dtype=wdt, act_dtype=adt)
    budget = _budget_of(args)
    p = space.profile(args.metric, convention=_convention(args), by=args.by, over=args.over,
                      n_jobs=args.jobs, **kw)
    fmt = format_bytes if args.metric.endswith("_bytes") else (lambda v: format_count(v, p.unit))
    con = _console()
    what = f"{args.metric} ({p.convention})" if args.metric == "ops" else args.metric
    con.print(f"[bold]{space.name}[/]: exact profile of [bold]{what}[/] over {_big(p.total)} "
              f"{p.over}" + (f", by {p.group_name}" if args.by else ""))
    # a bound on the profiled metric alone is one more point of the
    # profile's own pass over the groups (no second dynamic program)
    shared = None
    if budget is not None and budget.limits.keys() == {args.metric} \
            and budget.convention == p.convention:
        try:
            shared = _profile_cdfs(p, args, budget.limits[args.metric])
        except TooLarge:
            shared = None
    if shared is not None:
        by = {g: c[-1] for g, c in zip(p.group_values if p.group_name else [None], shared[2])}
        _print_within(con, p, args, Within(budget, p.over, sum(by.values()), p.total, by))
    elif budget is not None:
        _print_within(con, p, args, space.count_within(budget, over=args.over, **kw))
    for name, wit in (("min", p.min), ("max", p.max)):
        where = f" at {p.group_name}={wit.group}" if p.group_name else ""
        con.print(f"{name} {fmt(wit.value)} ({wit.value:,}){where}: {_native(wit.native)}",
                  soft_wrap=True, markup=False)
    hist = None
    try:
        hist = _print_distribution(con, p, args, fmt, shared)
    except TooLarge as e:
        con.print(f"[yellow]distribution not shown: {e}[/]")
    if args.plot and hist is not None:
        from .plots import plot_profile
        if args.results:
            _need_results(args.results)
        out = plot_profile(p, args.plot, by=args.by, results=args.results, hist=hist)
        con.print(f"plot written to {out}")
    return 0


def _print_within(con, p, args, w) -> None:
    """The exact count within a budget (a :class:`~.search_spaces.profiles.Within`)."""
    frac = float(w.fraction)
    con.print(f"within {w.budget}: [bold]{_big(w.count)}[/] of {_big(w.total)} {w.over} "
              f"(exactly {w.fraction.numerator}/{w.fraction.denominator}, {frac:.3g})")
    if args.by:
        con.print("  " + ", ".join(f"{p.group_name}={g}: {c:,}" for g, c in w.by_group.items()))


def _profile_cdfs(p, args, bound=None) -> tuple:
    """``(edges, fine bins per shown bin, per-group exact counts at edges - 1
    [and at bound])``: every count the profile command prints, from one pass
    over the groups (fine exact histograms, merged for display)."""
    fine = 8 if p.materialized else 2  # a bin edge costs a product per value of a group's halves
    edges = p.edges(args.bins * fine)
    extra = [min(int(bound), (1 << 63) - 1)] if bound is not None else []
    return edges, fine, p.group_cdfs((edges - 1).tolist() + extra)


def _print_distribution(con, p, args, fmt, cdfs=None) -> list:
    """Exact quantiles (exact brackets where groups are held as halves), a
    histogram, and per group a table, from :func:`_profile_cdfs` (computed
    here unless given).  Returns the fine histograms per group and their
    edges, for the plot."""
    from rich.table import Table

    from .search_spaces.profiles import bin_counts

    exact = p.materialized
    edges, fine, cums = cdfs if cdfs is not None else _profile_cdfs(p, args)
    per_group = [bin_counts(c[:len(edges)]) for c in cums]    # the budget's point, if any, last
    pooled = [sum(c) for c in zip(*per_group)]
    qs = list(_STATS_Q.values())
    t = Table(title=f"exact {'quantiles' if exact else 'quantile brackets [a, b)'} "
                    f"({p.over}, {p.total:,})")
    t.add_column("")
    for name in _STATS_Q:
        t.add_column(name, justify="right")
    if exact:
        t.add_row(args.metric, *(fmt(v) for v in p.quantiles(qs)))
    else:
        t.add_row(args.metric, *(f"{fmt(a)}..{fmt(b)}" for a, b in _brackets(pooled, edges, qs)))
    con.print(t)
    shown = [sum(pooled[i:i + fine]) for i in range(0, len(pooled), fine)]
    con.print(f"histogram ({len(shown)} bins, exact counts):")
    _print_histogram(con, args.metric, shown, edges[::fine].tolist() + [int(edges[-1])], fmt)
    if args.by:
        t = Table(title=f"{args.metric} by {p.group_name} (exact)")
        for col in (p.group_name, "candidates", "min", "median", "max"):
            t.add_column(col, justify="right")
        for g, tot, lo, hi, h in zip(p.group_values, p.totals, p.group_min, p.group_max, per_group):
            med = p.quantiles([0.5], group=g)[0] if exact else None
            (a, b), = [(med, med + 1)] if exact else _brackets(h, edges, [0.5])
            t.add_row(str(g), f"{tot:,}", fmt(lo.value), fmt(a) if b - a <= 1 else
                      f"{fmt(a)}..{fmt(b)}", fmt(hi.value))
        con.print(t)
    return [edges, per_group]


def _brackets(counts, edges, qs) -> list:
    """``[a, b)`` holding each exact quantile, from exact bin counts."""
    from fractions import Fraction
    total = sum(counts)
    cum, acc = [], 0
    for c in counts:
        acc += c
        cum.append(acc)
    out = []
    for q in qs:
        need = max(1, -(-total * Fraction(str(q)).numerator // Fraction(str(q)).denominator))
        j = next(i for i, c in enumerate(cum) if c >= need)
        out.append((int(edges[j]), int(edges[j + 1])))
    return out


# ----------------------------------------------------------------- filter
def cmd_filter(args) -> int:
    from .analytics import filter_results
    from .budget import Budget
    from .storage import write_table

    data = _open_results(args.results)
    budget = Budget(max_macs=args.max_macs, max_flops=args.max_flops, max_params=args.max_params,
                    max_peak_act_bytes=args.max_peak_act_bytes, max_latency=args.max_latency,
                    max_active_params=args.max_active_params,
                    max_kv_cache_bytes=args.max_kv_cache_bytes)
    missing = [c for c in budget.limits if c not in data.schema.names]
    if missing:
        raise UserError(f"{args.results} has no {', '.join(map(repr, missing))} column for this "
                        "budget" + (" (score with a device for latency)" if "latency_s" in missing
                                    else " (score a language-model phase)"
                                    if {"active_params", "kv_cache_bytes"} & set(missing) else ""))
    table = filter_results(data, budget=budget)
    out = write_table(args.out, table, overwrite=args.overwrite)
    _console().print(f"{table.num_rows:,} candidates within {budget} written to {out}")
    return 0


# ----------------------------------------------------------------- parser
def _add_budget_options(s: argparse.ArgumentParser, what: str) -> None:
    """The --max-* flags of a budget (``_budget_of`` reads them)."""
    s.add_argument("--max-macs", type=_count_arg, metavar="N", help=what)
    s.add_argument("--max-flops", type=_count_arg, metavar="N", help="bound on 'ops' under --convention")
    s.add_argument("--max-params", type=_count_arg, metavar="N")
    s.add_argument("--max-peak-act-bytes", type=_bytes_arg, metavar="BYTES")


def _add_profile_command(sub, fmt) -> None:
    """The ``profile`` subcommand."""
    s = sub.add_parser("profile", help="exact distribution of a metric over a whole space",
                       formatter_class=fmt,
                       description="The exact distribution of a metric over every candidate of a "
                                   "decomposable space (nb201, the declarative spaces), without "
                                   "sampling: the exact count within a budget, quantiles, the "
                                   "minimum and maximum with an architecture each, a histogram "
                                   "of exact counts, and a plot.",
                       epilog="examples:\n"
                              "  nasflops profile nb201 --metric params\n"
                              "  nasflops profile ofa-mbv3 --metric params --by r --max-params 6M\n"
                              "  nasflops profile ofa-mbv3 --metric macs --max-macs 120M --over encodings\n"
                              "  nasflops profile proxylessnas-mobile --plot proxyless.png\n"
                              "  nasflops profile nb201 --plot nb201.png --results nb201.parquet")
    s.add_argument("space", help="search space name (see 'nasflops spaces')")
    s.add_argument("--metric", "-m", default="macs",
                   help="ops, macs, params, weight_bytes, act_bytes, peak_act_bytes, read_bytes, "
                        "write_bytes (default: macs)")
    s.add_argument("--by", default=None, metavar="FIELD", help="per group of a native field (r)")
    s.add_argument("--over", default="networks", choices=["networks", "encodings"],
                   help="count distinct networks (default) or native encodings")
    _add_budget_options(s, "the exact count within these bounds")
    s.add_argument("--bins", type=_int_arg(1, 10_000, "bins"), default=40,
                   help="histogram bins (default: 40)")
    s.add_argument("--plot", default=None, metavar="OUT.png", help="write a PNG (needs matplotlib)")
    s.add_argument("--results", default=None, metavar="DATASET",
                   help="a results dataset of the space: its sampled histogram is overlaid on the plot")
    s.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="space parameter")
    s.add_argument("-j", "--jobs", type=_jobs_arg, default=1,
                   help="threads building the distributions (-1 = all cores)")
    _add_scoring_options(s)
    s.set_defaults(func=cmd_profile)


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(
        prog="nasflops", formatter_class=fmt, epilog=MAIN_EPILOG,
        description="Analytic FLOPs/MACs, params and memory of neural architectures and whole NAS "
                    "search spaces, without building them.")
    p.add_argument("--version", action="version", version=f"nasflops {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in (_add_spaces_command, _add_score_command, _add_count_command,
                _add_validate_command, _add_stats_command, _add_profile_command,
                _add_filter_command):
        add(sub, fmt)
    return p


def _add_spaces_command(sub, fmt) -> None:
    """The ``spaces`` subcommand."""
    s = sub.add_parser("spaces", help="list the search spaces", formatter_class=fmt,
                       description="List the available search spaces: size, native encoding, reference.",
                       epilog="example:\n  nasflops spaces\n  nasflops spaces --json")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_spaces)


def _add_score_command(sub, fmt) -> None:
    """The ``score`` subcommand."""
    s = sub.add_parser("score", help="score a search space into a Parquet dataset", formatter_class=fmt,
                       description="Sample (-n) or enumerate (--all) a search space, score every candidate "
                                   "and stream the results into a Parquet dataset (a directory of part files), "
                                   "with a progress bar and a summary table.",
                       epilog="examples:\n"
                              "  nasflops score nb201 --all -o nb201.parquet\n"
                              "  nasflops score nb201 --all -p dataset=ImageNet16-120 -o nb201-in16.parquet\n"
                              "  nasflops score ofa-mbv3 -n 10M --seed 1 -o ofa.parquet -j 2 --convention flops\n"
                              "  nasflops score ofa-mbv3 -n 10M --seed 1 -o ofa.parquet -j 2 --resume   # after a crash\n"
                              "  nasflops score ofa-mbv3 -n 100k --max-macs 120M -o small.parquet   # exact, uniform within")
    s.add_argument("space", help="search space name (see 'nasflops spaces')")
    s.add_argument("-n", type=_count_arg, default=None, metavar="N", help="candidates to sample (e.g. 1M)")
    s.add_argument("--all", action="store_true", help="enumerate the whole space")
    s.add_argument("--seed", type=_int_arg(0, MAX_SEED, "seed"), default=0,
                   help="sampling seed (default: 0)")
    s.add_argument("-o", "--out", required=True, help="output dataset directory")
    s.add_argument("-p", "--param", action="append", metavar="KEY=VALUE",
                   help="space parameter, e.g. -p dataset=cifar100 (repeatable)")
    _add_scoring_options(s)
    _add_phase_options(s)
    s.add_argument("-j", "--jobs", type=_jobs_arg, default=1, help="parallel chunks (joblib; -1 = all cores)")
    s.add_argument("--chunk-size", type=_count_arg, default=None, metavar="K",
                   help="candidates per part file")
    s.add_argument("--resume", action="store_true", help="finish an interrupted run in OUT")
    s.add_argument("--overwrite", action="store_true", help="replace an existing dataset in OUT")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_budget_options(s, "draw the -n candidates uniformly among those within the budget, exactly")
    s.add_argument("--over", default="encodings", choices=["networks", "encodings"],
                   help="within a budget: uniform over native encodings (default) or networks")
    s.set_defaults(func=cmd_score)


def _add_count_command(sub, fmt) -> None:
    """The ``count`` subcommand."""
    from .options import DEVICES
    s = sub.add_parser("count", help="per-layer table of one network", formatter_class=fmt,
                       description="Per-layer shapes, ops, params and memory of one network: a zoo model, "
                                   "a search-space candidate in its native encoding, or a Python file "
                                   "defining a torch model (`model` or `build_model()`, and INPUT_SHAPE).\n\n"
                                   "WARNING: a FILE.py is executed, with your permissions, to build its "
                                   "model: run only files you trust, as you would `python FILE.py`.",
                       epilog="examples:\n"
                              "  nasflops count resnet50\n"
                              "  nasflops count mobilenet_v2 --convention flops --batch-size 8 --dtype fp16\n"
                              "  nasflops count resnet50 --all-conventions\n"
                              "  nasflops count '|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'\n"
                              "  nasflops count '{\"ks\": [3,5,7,3,5,7,3,5,7,3,5,7,3,5,7,3,5,7,3,5], \"e\": [3,4,6,3,4,6,3,4,6,3,4,6,3,4,6,3,4,6,3,4], \"d\": [2,3,4,2,3], \"r\": 176}'\n"
                              "  nasflops count my_model.py --input-shape 3,224,224\n"
                              "  nasflops count resnet18 --report torchstat --device a100\n"
                              "  nasflops count llama-2-7b --phase decode --context 4096 --dtype bf16 --device a100-bf16\n"
                              "  nasflops count mixtral-8x7b --phase prefill --seq-len 4096 --causal half\n"
                              "  nasflops count gpt2 --phase train --seq-len 1024 --dtype bf16\n"
                              "  nasflops count '{\"layers\": 8, \"hidden\": 1024, \"heads\": 16, \"kv_heads\": 4, "
                              "\"ffn\": 2816, \"experts\": 8, \"top_k\": 2}' --space llm-moe --phase decode")
    s.add_argument("target", metavar="MODEL_OR_ARCH",
                   help="zoo model, native encoding, or file.py (executed: trust it as you would "
                        "`python file.py`)")
    s.add_argument("--space", default=None, help="space the native encoding belongs to (default: guessed)")
    s.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="space parameter")
    s.add_argument("--input-shape", default=None, metavar="C,H,W", help="input of a torch model")
    s.add_argument("--all-conventions", action="store_true",
                   help="every convention's total side by side, with what each counts")
    s.add_argument("--top", type=_int_arg(0, 1 << 31, "top"), default=0, metavar="K",
                   help="only the K most expensive layers")
    s.add_argument("--report", choices=("nasflops", "torchstat"), default="nasflops",
                   help="nasflops' per-layer table, or torchstat 0.0.7's per-module report (its "
                        "MAdd, Flops, memory, MemRead, MemWrite) with a roofline[%%] column "
                        "(default: nasflops)")
    s.add_argument("--device", default=None, metavar="NAME",
                   help=f"roofline profile: {', '.join(DEVICES)} (torchstat report default: t4)")
    s.add_argument("--all-layers", action="store_true",
                   help="language models: every decoder layer's rows (default: the first, then "
                        "the others summed)")
    _add_scoring_options(s)
    _add_phase_options(s)
    s.set_defaults(func=cmd_count)


def _add_validate_command(sub, fmt) -> None:
    """The ``validate`` subcommand."""
    s = sub.add_parser("validate", help="check the core against PyTorch hook counts", formatter_class=fmt,
                       description="Build N sampled candidates as torch modules, count them with forward "
                                   "hooks and with the core, and report per-metric agreement. Exits 1 on "
                                   "any mismatch. Needs torch.",
                       epilog="examples:\n  nasflops validate nb201 -n 20\n"
                              "  nasflops validate ofa-mbv3 -n 5 --convention flops --batch-size 4\n"
                              "  nasflops validate zoo -n 19 --device meta")
    s.add_argument("space", help="search space name, 'random' for random DAGs of every op, or "
                   "'random-transformer' for random token/attention networks")
    s.add_argument("-n", type=_int_arg(1, 1 << 20, "n"), default=10,
                   help="candidates to check (default: 10)")
    s.add_argument("--seed", type=_int_arg(0, MAX_SEED, "seed"), default=0)
    s.add_argument("--convention", "-c", default="macs", help="convention compared (default: macs)")
    s.add_argument("--batch-size", "-b", type=_int_arg(1, MAX_BATCH, "batch size"), default=1,
                   metavar="B", help="samples per pass (default: 1)")
    s.add_argument("--device", default="cpu",
                   help="torch device for the hook run; 'meta' skips the arithmetic (shapes only, "
                        "much faster) (default: cpu)")
    s.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="space parameter")
    s.set_defaults(func=cmd_validate)


def _add_stats_command(sub, fmt) -> None:
    """The ``stats`` subcommand."""
    s = sub.add_parser("stats", help="distributions of a results dataset", formatter_class=fmt,
                       description="Quantiles and histograms per metric of a results dataset; group-by over "
                                   "a native field; a PNG of the distributions with the Pareto front.",
                       epilog="examples:\n  nasflops stats nb201.parquet\n"
                              "  nasflops stats ofa.parquet --by r --metric macs --plot ofa.png")
    s.add_argument("results")
    s.add_argument("--metrics", nargs="+", default=["ops", "macs", "params", "peak_act_bytes"],
                   help="metrics to summarise")
    s.add_argument("--by", default=None, metavar="FIELD", help="group by a native field (e.g. r)")
    s.add_argument("--metric", default="macs", help="metric summarised per group (default: macs)")
    s.add_argument("--limit", type=_int_arg(0, 1 << 31, "limit"), default=30, metavar="K",
                   help="groups shown (default: 30)")
    s.add_argument("--bins", type=_int_arg(1, 10_000, "bins"), default=40, help="histogram bins")
    s.add_argument("--plot", default=None, metavar="OUT.png", help="write a PNG (needs matplotlib)")
    s.set_defaults(func=cmd_stats)


def _add_filter_command(sub, fmt) -> None:
    """The ``filter`` subcommand."""
    s = sub.add_parser("filter", help="write the candidates within a budget", formatter_class=fmt,
                       description="Write the valid candidates within a budget (bounds inclusive) to a new "
                                   "dataset; the filter is pushed down to the Parquet reader.",
                       epilog="example:\n  nasflops filter ofa.parquet --max-macs 300M --max-params 5M -o small.parquet")
    s.add_argument("results")
    s.add_argument("-o", "--out", required=True)
    s.add_argument("--max-macs", type=_count_arg, metavar="N")
    s.add_argument("--max-flops", type=_count_arg, metavar="N", help="bound on 'ops' under the dataset's convention")
    s.add_argument("--max-params", type=_count_arg, metavar="N")
    s.add_argument("--max-peak-act-bytes", type=_bytes_arg, metavar="BYTES", help="e.g. 512KiB")
    s.add_argument("--max-latency", type=_seconds_arg, metavar="SECONDS")
    s.add_argument("--max-active-params", type=_count_arg, metavar="N",
                   help="language models: parameters one token touches")
    s.add_argument("--max-kv-cache-bytes", type=_bytes_arg, metavar="BYTES",
                   help="language models: KV cache after the pass, e.g. 2GiB")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_filter)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .scoring import SpecError
    from .search_spaces import NativeError
    try:
        return args.func(args)
    except (UserError, SpecError, NativeError, ValueError, OverflowError) as e:
        # ValueError covers corrupt datasets, missing columns, schema errors
        print(f"nasflops {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:      # output piped into `head`: not an error
        return 0
    except OSError as e:
        # a path that does not exist, is read-only or not a directory, a full
        # disk, a locked output: the environment, not a bug -- one line
        out = getattr(args, "out", None)
        where = f" (output: {out})" if out and e.filename is None else ""
        print(f"nasflops {args.command}: error: {_os_message(e)}{where}", file=sys.stderr)
        return EXIT_USER_ERROR
    except MemoryError:
        print(f"nasflops {args.command}: error: out of memory (ask for fewer candidates at once: "
              "--chunk-size, or smaller parameters)", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
