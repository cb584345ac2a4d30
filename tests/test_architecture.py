"""The house rules of docs/design.md, as tests: every import points down the
layers (function-level imports included), no function is longer than 120
lines, and every docstring example runs."""
import ast
import doctest
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

import nasflops
import nasflops.search_spaces

ROOT = Path(nasflops.__file__).resolve().parent.parent
#: where each package's files live (search spaces sit at the repository root)
PACKAGE_DIRS = {"nasflops": ROOT / "nasflops",
                "nasflops.search_spaces": ROOT / "search_spaces"}

#: top to bottom; a module may import only from rows below its own.  Names in
#: one row are independent: they may not import each other.
LAYERS = {
    "nasflops": [
        ["__init__"],                     # the public facade
        ["__main__"],
        ["cli"],
        ["plots"],
        ["analytics", "torch_bridge", "reports"],
        ["pipeline"],
        ["storage"],
        ["search_spaces"],
        ["budget"],
        ["scoring"],
        ["engine"],
        ["options"],
        ["conventions"],
        ["_pyref"],
        ["spec"],
        ["units", "_core", "_version"],
    ],
    "nasflops.search_spaces": [
        ["__init__"],                     # the registry
        ["lm_space"],
        ["nb201", "zoo", "declarative", "autoformer"],
        ["vision_transformers", "language_models"],
        ["templates"],
        ["base"],
        ["profiles"],                     # exact whole-space answers
        ["exact"],                        # dynamic programs over a trellis
        ["dists"],                        # exact distributions
        ["tables"],                       # block tables, the trellis interface
        ["sampling"],
        ["columns", "_gather", "_dist"],
    ],
    "nasflops.search_spaces.declarative": [
        ["__init__"], ["space"], ["decode", "blocks", "chains"], ["schema"],
    ],
    "nasflops.torch_bridge": [
        ["__init__"], ["validate"], ["trace"], ["_readers"], ["_layout"], ["_tokens"], ["_values"],
        ["hooks"], ["build", "_record"], ["registry"], ["modules"], ["reference"],
    ],
}


def _module_files():
    """``{dotted module name: path}`` of every Python module of nasflops."""
    out = {}
    for pkg, base in PACKAGE_DIRS.items():
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts]
            out[".".join([pkg] + parts)] = path
    return out


MODULES = _module_files()
#: compiled modules (no .py file to find)
COMPILED = {"nasflops._core", "nasflops.search_spaces._gather", "nasflops.search_spaces._dist"}


def _known(name: str) -> bool:
    return name in MODULES or f"{name}.__init__" in MODULES or name in COMPILED


def _imports(name: str, path: Path):
    """Every nasflops module imported by a module, anywhere in its code."""
    pkg = name[: -len(".__init__")] if name.endswith(".__init__") else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("nasflops")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.rsplit(".", node.level - 1)[0] if node.level > 1 else pkg
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if not mod.startswith("nasflops"):
                continue
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                found.append((sub if _known(sub) else mod, node.lineno))
    return found


def _rank(pkg: str, child: str):
    for i, row in enumerate(LAYERS[pkg]):
        if child in row:
            return i
    raise AssertionError(f"{pkg}.{child} is in no layer of {pkg}: add it to LAYERS")


def _check_edge(src: str, dst: str) -> str:
    """An empty string if ``src`` may import ``dst``, else why not."""
    a, b = src.split("."), dst.split(".")
    if a[-1] != "__init__":
        a = a + [None]
    if len(b) == 1:
        return f"{src} imports the package root {dst} (import the module that defines the name)"
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    pkg = ".".join(a[:i])
    if pkg not in LAYERS:
        return ""                      # inside a package without internal rules
    child_a = a[i] if i < len(a) and a[i] is not None else "__init__"
    child_b = b[i] if i < len(b) else "__init__"
    if child_a == child_b:
        return ""
    ra, rb = _rank(pkg, child_a), _rank(pkg, child_b)
    if ra >= rb:
        return f"{src} imports {dst}: {pkg}.{child_a} must sit above {pkg}.{child_b}"
    return ""


def test_every_module_has_a_layer():
    for name in MODULES:
        parts = name.split(".")
        for k in range(1, len(parts)):
            pkg = ".".join(parts[:k])
            if pkg in LAYERS:
                _rank(pkg, parts[k])


def test_imports_point_down():
    bad = []
    for name, path in MODULES.items():
        for target, line in _imports(name, path):
            why = _check_edge(name, target)
            if why:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {why}")
    assert not bad, "imports that point up or sideways:\n" + "\n".join(bad)


def test_the_layer_check_catches_cycles():
    # the rule itself: an upward import and a sideways one are refused
    assert _check_edge("nasflops.spec", "nasflops.scoring")
    assert _check_edge("nasflops.analytics", "nasflops.torch_bridge.build")
    assert _check_edge("nasflops.search_spaces.base", "nasflops.search_spaces.nb201")
    assert _check_edge("nasflops.scoring", "nasflops")
    assert not _check_edge("nasflops.scoring", "nasflops.engine")
    assert not _check_edge("nasflops.search_spaces.nb201", "nasflops.search_spaces.templates")


# ------------------------------------------------------------ function length
MAX_LINES = 120
_CYTHON_DEF = re.compile(r"^(\s*)(?:cdef|cpdef|def)\s+(?:[\w\[\]\*, ]+\s+)?(\w+)\s*\(")


def _cython_functions(path: Path):
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        m = _CYTHON_DEF.match(line)
        if not m or line.rstrip().endswith(":") is False and "(" not in line:
            continue
        if line.lstrip().startswith(("cdef struct", "cdef enum", "cdef packed", "cdef extern")):
            continue
        indent = len(m.group(1))
        end = i + 1
        while end < len(lines) and (not lines[end].strip()
                                    or len(lines[end]) - len(lines[end].lstrip()) > indent):
            end += 1
        while end > i + 1 and not lines[end - 1].strip():
            end -= 1
        out.append((m.group(2), i + 1, end - i))
    return out


def test_no_function_over_120_lines():
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    for base in PACKAGE_DIRS.values():
        for path in base.rglob("*.pyx"):
            for fname, line, n in _cython_functions(path):
                if n > MAX_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{line} {fname} ({n} lines)")
    assert not long, "functions over 120 lines:\n" + "\n".join(long)


# ------------------------------------------------------------------ doctests
def _doctests():
    finder = doctest.DocTestFinder()
    for name in sorted(MODULES):
        mod_name = name[: -len(".__init__")] if name.endswith(".__init__") else name
        if mod_name.endswith("__main__"):
            continue
        if mod_name.startswith("nasflops.torch_bridge") and importlib.util.find_spec("torch") is None:
            continue
        module = importlib.import_module(mod_name)
        for test in finder.find(module, mod_name):
            if test.examples:
                yield pytest.param(test, id=test.name)


@pytest.mark.parametrize("test", list(_doctests()))
def test_docstring_examples(test):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    result = runner.run(test, out=lambda s: pytest.fail(s, pytrace=False))
    assert result.failed == 0
