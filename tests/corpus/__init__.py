"""Third-party CNN definitions, vendored for the torch bridge tests and the
bridge benchmark: each file is one upstream model (source, commit, licence
and changes in its header; licence texts in ``LICENSES/``; ``README.md`` lists
them) with a footer defining ``INPUT_SHAPE`` and ``build()``.

``NAMES`` lists them; :func:`build` returns ``(model in eval mode, input
shape)``.  ``UNSUPPORTED`` are the files that use constructs the bridge does
not translate (none now).
"""
import contextlib
import importlib
import io
import json
import warnings
from pathlib import Path

HERE = Path(__file__).parent
INDEX = {e["name"]: e for e in json.loads((HERE / "index.json").read_text())}
NAMES = tuple(INDEX)
#: files whose models need einops
NEEDS_EINOPS = ("lucidrains_mobilevit_xxs",)
#: files the bridge cannot translate (the tests check the error instead)
UNSUPPORTED = ()
#: files with attention (matrix products of activations): from_torch reads
#: them, count_with_hooks has no rule for torch.matmul


def build(name: str):
    """``(model, (C, H, W))`` of corpus file ``name``, the model in eval mode."""
    # some sources print while building, or call deprecated torch functions
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod = importlib.import_module(f"{__name__}.{name}")
        model = mod.build()
    return model.eval(), tuple(mod.INPUT_SHAPE)
