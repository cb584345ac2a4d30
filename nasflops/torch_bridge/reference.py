"""Run the real reference counters (thop, ptflops, fvcore) the way their
READMEs do, silently, and return their totals as integers.

Used by the compatibility tests and the benchmark; each tool is imported on
first use, so none of them is a dependency of nasflops.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings

import torch
import torch.nn as nn

__all__ = ["thop_count", "ptflops_count", "fvcore_count", "flop_counter_count",
           "REFERENCE_TOOLS"]


def _input(input_shape, batch_size: int = 1) -> torch.Tensor:
    return torch.randn((batch_size,) + tuple(int(v) for v in input_shape))


def thop_count(model: nn.Module, input_shape, batch_size: int = 1) -> tuple[int, int]:
    """``thop.profile(model, (x,))`` as ``(ops, params)``.

    thop accumulates float64; totals are exact below 2**53.  Its params only
    cover modules it has a rule for.
    """
    from thop import profile
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ops, params = profile(model, inputs=(_input(input_shape, batch_size),), verbose=False)
    return int(round(float(ops))), int(round(float(params)))


def ptflops_count(model: nn.Module, input_shape) -> tuple[int, int]:
    """``ptflops.get_model_complexity_info`` (default pytorch backend, batch 1)
    as ``(macs, params)``."""
    from ptflops import get_model_complexity_info
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macs, params = get_model_complexity_info(
            model, tuple(int(v) for v in input_shape), as_strings=False,
            print_per_layer_stat=False, verbose=False, ost=sink)
    if macs is None:
        raise RuntimeError(f"ptflops failed on {type(model).__name__}: {sink.getvalue()[-2000:]}")
    return int(macs), int(params)


def fvcore_count(model: nn.Module, input_shape, batch_size: int = 1) -> int:
    """``fvcore.nn.FlopCountAnalysis(model, x).total()`` with the model in eval mode."""
    from fvcore.nn import FlopCountAnalysis
    model.eval()
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fca = FlopCountAnalysis(model, _input(input_shape, batch_size))
        fca.unsupported_ops_warnings(False)
        fca.uncalled_modules_warnings(False)
        fca.tracer_warnings("none")
        return int(fca.total())


def flop_counter_count(model: nn.Module, input_shape, batch_size: int = 1) -> int:
    """torch's own ``FlopCounterMode`` total (a multiply-add counts two: the
    ``fma2`` convention), the model run once without gradients in eval mode."""
    from torch.utils.flop_counter import FlopCounterMode
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    x = torch.randn((batch_size,) + tuple(int(v) for v in input_shape), device=device)
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


#: tool name -> callable(model, (C, H, W)) -> ops total
REFERENCE_TOOLS = {
    "thop": lambda m, s: thop_count(m, s)[0],
    "ptflops": lambda m, s: ptflops_count(m, s)[0],
    "fvcore": fvcore_count,
    "fma2": flop_counter_count,
}
