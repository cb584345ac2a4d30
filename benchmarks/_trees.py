"""Running Python against one checkout of nasflops, and nothing else of it.

The version benchmarks run a script once per checkout with that checkout
first on the module path.  That alone is not enough: an editable install of
nasflops (``pip install -e .``) adds an import hook that maps
``nasflops.search_spaces`` to *its* tree's top-level ``search_spaces/``
folder, and since 0.2 a checkout holds its spaces there, not under
``nasflops/``.  A baseline checkout would then import its own ``nasflops``
with the installed tree's spaces.  :func:`run_in_tree` drops such hooks
in the child and maps ``nasflops.search_spaces`` to the checkout's own
folder, whichever layout the checkout has.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Runs first in the child: argv[1] is the checkout, argv[2:] the script and
# its arguments.
_BOOT = r"""
import importlib.abc, importlib.util, os, runpy, sys
tree = sys.argv[1]
sys.meta_path[:] = [f for f in sys.meta_path
                    if not getattr(f, "__module__", "").startswith("__editable__")]
spaces = os.path.join(tree, "search_spaces")
if os.path.isdir(spaces) and not os.path.isdir(os.path.join(tree, "nasflops", "search_spaces")):
    class _Spaces(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name != "nasflops.search_spaces":
                return None
            return importlib.util.spec_from_file_location(
                name, os.path.join(spaces, "__init__.py"), submodule_search_locations=[spaces])
    sys.meta_path.insert(0, _Spaces())
sys.argv = sys.argv[2:]
sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))   # not the cwd: as `python script` does
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_in_tree(tree: Path, argv: list[str], launcher: tuple = (),
                cwd: Path = None) -> subprocess.CompletedProcess:
    """Run ``python <argv>`` (a script and its arguments) with checkout
    ``tree``'s nasflops and search spaces, and no other; in ``cwd`` (default:
    ``tree``), under ``launcher`` if given (e.g. valgrind and its options)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run([*launcher, os.path.realpath(sys.executable), "-c", _BOOT, str(tree), *argv],
                          env=env, cwd=cwd or tree, capture_output=True, text=True)


def describe(tree: Path) -> str:
    """``git describe`` of a checkout (``-dirty`` when it has changes), or "unknown"."""
    r = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=tree,
                       capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def add_baseline_argument(parser) -> None:
    """``--baseline``: the checkout a version benchmark compares this tree against."""
    parser.add_argument("--baseline", type=Path, required=True,
                        help="a nasflops checkout built in place (python setup.py build_ext "
                             "--inplace), to compare against")
