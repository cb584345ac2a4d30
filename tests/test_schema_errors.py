"""Every wrong value anywhere in a declarative definition is one SchemaError.

A walk over a definition using every feature of the schema: each key and
each list item in turn is replaced by values of the wrong type, NaN,
infinities, huge and negative numbers, empty and nested containers and
mappings with non-string keys.  The definition must then compile (the value
was acceptable there) or raise :class:`SchemaError` -- never a TypeError,
IndexError or KeyError from deep inside, never a multi-second stall.  The
same holds for files: malformed YAML and Python tags.
"""
import copy
import time

import pytest

from nasflops.search_spaces import get_space
from nasflops.search_spaces.declarative import SchemaError, compile_space

BASE = {
    "name": "tiny", "parameters": {"width_mult": 1.0},
    "input": {"channels": 3, "resolution": {"min": 32, "max": 64, "step": 32}},
    "options": {"divisor": 8, "inplace": ["relu"], "global_pool": "adaptive"},
    "stem": [{"type": "conv", "out": 16, "kernel": 3, "stride": 2, "act": "relu"},
             {"type": "maxpool", "kernel": 3, "stride": 2, "padding": 1}],
    "stages": [{"width": [16, 24], "depth": [1, 2], "stride": 2,
                "block": {"type": ["mbconv", "skip"], "kernel": [3, 5], "expand": [3, 6],
                          "act": "relu", "se": {"reduction": 4, "gate": "hardsigmoid"}}},
               {"width": 32, "depth": 1, "block": {"type": "resnet_bottleneck", "expand": 0.25}}],
    "head": [{"type": "global_pool"}, {"type": "flatten"}, {"type": "dropout", "rate": 0.2},
             {"type": "linear", "out": 10}],
}
BAD = [None, True, "x", -1, 0, 10**30, 2**31, 1.5, float("nan"), float("inf"), -float("inf"),
       [], [1, "a"], {}, {"a": 1}, [[1]], [{}], {1: 2, "b": 3}]


def _paths(node, prefix=()):
    if prefix:
        yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def test_the_base_definition_compiles():
    space = compile_space(BASE)
    assert len(space.encode_columns(space.sample_columns(3, seed=0))) == 3


def test_every_wrong_value_anywhere_is_a_schema_error():
    escapes, slow, checked = [], [], 0
    for path in _paths(BASE):
        for bad in BAD:
            d = copy.deepcopy(BASE)
            node = d
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = bad
            t0 = time.perf_counter()
            try:
                space = compile_space(d)
                space.encode_columns(space.sample_columns(2, seed=0))
            except SchemaError as e:
                assert "\n" not in str(e)
            except Exception as e:  # noqa: BLE001 -- any other kind is the failure
                escapes.append(f"{path} = {bad!r}: {type(e).__name__}: {e}")
            checked += 1
            if time.perf_counter() - t0 > 2:
                slow.append(f"{path} = {bad!r}")
    assert checked > 900
    assert not escapes, "\n".join(escapes[:20])
    assert not slow, slow


@pytest.mark.parametrize("text,fragment", [
    ("stages: [", "not a valid YAML"),
    ("!!python/object/apply:os.system ['echo pwned']", "not a valid YAML"),
    ("name: x\nstages:\n  - {width: .nan, depth: 1, block: {type: conv}}", "width"),
    ("name: x\nstages:\n  - {width: 16, depth: 100000000000000000000, block: {type: conv}}", "depth"),
    ("name: x\nstages: 5", "stages"),
    ("name: x\ninput: {resolution: big}\nstages:\n  - {width: 16, depth: 1, block: {type: conv}}",
     "resolution"),
    ("name: x\nstages:\n  - {width: 16, depth: 1, block: {type: [[conv]]}}", "type"),
    ("- just\n- a list", "expected a mapping"),
    ("", "expected a mapping"),
])
def test_yaml_files_end_in_one_schema_error(tmp_path, text, fragment):
    f = tmp_path / "space.yaml"
    f.write_text(text)
    with pytest.raises(SchemaError, match=fragment) as e:
        get_space(f"yaml:{f}")
    assert str(f) in str(e.value) and "\n" not in str(e.value)
