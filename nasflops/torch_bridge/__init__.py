"""The torch bridge: translate between layer specs and ``torch.nn`` models, and
check every number the core prints against an independent hook-based count.

Requires torch (``pip install nasflops[torch]``); nothing else in nasflops
imports it.

* :func:`to_torch` -- a real ``nn.Module`` from one architecture's records;
* :func:`from_torch` -- a spec from a real model (one recorded run);
  :func:`translate` -- the same with record names and a parameter report;
* :func:`count_with_hooks` -- FLOPs/MACs, params and memory measured by
  running the model, without the core;
* :func:`validate` -- core vs hooks on sampled architectures, with a report.
"""
try:
    import torch  # noqa: F401  (a clear error before anything else fails)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("nasflops.torch_bridge needs torch: pip install 'nasflops[torch]'") from exc

from ._record import Offender, UnsupportedOpsError
from .build import SpecModule, spellable, to_torch
from .hooks import HOOK_CONVENTIONS, HookCounts, count_with_hooks
from .modules import (BRIDGE_MODULES, Add, Concat, InplaceAct, InplaceAdd, LayerNorm2d, Mul,
                      Scale, Slice, Zero)
from .trace import Translation, UnusedParametersWarning, from_torch, translate
from .validate import (ValidationReport, op_specs, random_specs, random_transformer_specs,
                       transformer_op_specs, validate)

__all__ = ["to_torch", "from_torch", "translate", "Translation", "UnusedParametersWarning",
           "validate", "ValidationReport", "random_specs", "op_specs", "count_with_hooks",
           "HookCounts", "HOOK_CONVENTIONS", "transformer_op_specs", "random_transformer_specs", "UnsupportedOpsError", "Offender", "SpecModule",
           "spellable", "Add", "InplaceAdd", "Mul", "Concat", "Slice", "Zero", "Scale",
           "LayerNorm2d", "InplaceAct", "BRIDGE_MODULES"]
