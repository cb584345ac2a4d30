"""Parquet dataset layout, schema, metadata round trip, atomic parts, reading back."""
import json
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import nasflops as nf
from nasflops import storage
from nasflops.budget import Budget
from nasflops.pipeline import score_space
from nasflops.storage import (META_KEY, RUN_FILE, list_parts, open_dataset, read_metadata,
                              read_results, scores_table, write_part, write_results)

from tests.chain_space import ChainSpace


@pytest.fixture
def run(tmp_path):
    return score_space(ChainSpace(invalid=0.1), n=700, seed=4, out=tmp_path / "run",
                       convention="flops", batch_size=8, weight_dtype="int8", act_dtype="fp16",
                       chunk_size=300, progress=False)


def test_layout_and_schema(run):
    names = sorted(os.listdir(run.path))
    assert names == [RUN_FILE, "part-000000.parquet", "part-000001.parquet", "part-000002.parquet"]
    schema = pq.read_schema(os.path.join(run.path, "part-000001.parquet"))
    assert schema.names == (["arch_id", "w", "k", "r"] + list(nf.METRICS) + ["status", "bad_layer"])
    assert schema.field("arch_id").type == pa.int64()
    assert all(schema.field(m).type == pa.int64() for m in nf.METRICS)
    assert schema.field("status").type == pa.int8()
    assert schema.field("r").type == pa.int32()
    assert pa.types.is_fixed_size_list(schema.field("w").type)
    assert [pq.read_metadata(p).num_rows for p in list_parts(run.path).values()] == [300, 300, 100]


def test_metadata_round_trips(run):
    want = {
        "version": nf.__version__, "convention": "flops", "unit": "FLOPs",
        "space": {"name": "chain", "params": {"invalid": 0.1}}, "mode": "sample", "seed": 4,
        "n": 700, "chunk_size": 300, "batch_size": 8, "weight_dtype": "int8", "act_dtype": "fp16",
        "weight_bytes_per_element": 1, "act_bytes_per_element": 2, "memory": "nasflops", "device": None,
        "fused_attention": False, "phase": "forward", "causal": "full",
    }
    assert run.metadata == want
    assert read_metadata(run.path) == want                       # from _nasflops.json
    for p in list_parts(run.path).values():                       # every part's schema
        assert json.loads(pq.read_schema(p).metadata[META_KEY.encode()]) == want
        assert read_metadata(p) == want
    t = read_results(run.path)
    assert read_metadata(t) == want                               # a Table keeps it
    assert read_metadata(open_dataset(run.path)) == want
    os.remove(os.path.join(run.path, RUN_FILE))                   # parts alone suffice
    assert read_metadata(run.path) == want
    # the stored element sizes are those the byte metrics used
    r = nf.score(ChainSpace(invalid=0.1).sample(5, seed=4), convention="flops", batch_size=8,
                 weight_dtype="int8", act_dtype="fp16", errors="status")
    ok = r["status"] == 0
    assert np.array_equal(t["weight_bytes"].to_numpy()[:5][ok], r["params"][ok] * 1)
    assert np.array_equal(t["act_bytes"].to_numpy()[:5], r["act_bytes"])


def test_device_metadata_and_latency(tmp_path):
    dev = nf.Device("mcu", 1e8, 1e7)
    run = score_space(ChainSpace(), n=50, out=tmp_path / "d", device=dev, progress=False)
    t = run.read()
    assert t.column_names[-1] == "latency_s" and t["latency_s"].type == pa.float64()
    assert read_metadata(run.path)["device"] == {"name": "mcu", "peak_ops_per_s": 1e8, "bytes_per_s": 1e7}
    direct = nf.score(ChainSpace().sample(50), device=dev)
    assert np.array_equal(t["latency_s"].to_numpy(), direct["latency_s"])


def test_temporaries_are_invisible(run):
    junk = os.path.join(run.path, ".part-000007.parquet.abc.incomplete")
    with open(junk, "wb") as fh:
        fh.write(b"not parquet")
    assert 7 not in list_parts(run.path)
    assert read_results(run.path).num_rows == 700
    # plain pyarrow on the directory skips it too (leading dot), and the json file
    assert ds.dataset(run.path, format="parquet").to_table().num_rows == 700


def test_write_part_is_atomic(tmp_path, monkeypatch):
    t = pa.table({"arch_id": pa.array([0, 1], pa.int64())})
    real = pq.write_table

    def dies_half_way(table, where, **kw):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        write_part(str(tmp_path), 3, t, token="tok")
    assert os.listdir(tmp_path) == []                              # neither final nor temporary
    monkeypatch.setattr(pq, "write_table", real)
    path = write_part(str(tmp_path), 3, t, token="tok")
    assert os.listdir(tmp_path) == ["part-000003.parquet"] and path.endswith("part-000003.parquet")


def test_scores_table_from_scores_and_round_trip(tmp_path):
    a = nf.Net(3, 8, 8)
    a.conv(a.input, 4, 3, padding=1)
    b = nf.Net(3, 4, 4)
    b.conv(b.input, 2, 1, bias=True)
    r = nf.score([a.records, b.records], convention="flops", batch_size=2)
    t = scores_table(r)
    assert t["arch_id"].to_pylist() == [0, 1]
    # by hand: a = 8*8*4*3*9 MACs x batch 2; b = 4*4*2*3 x 2
    assert t["macs"].to_pylist() == [2 * 8 * 8 * 4 * 3 * 9, 2 * 4 * 4 * 2 * 3]
    assert json.loads(t.schema.metadata[b"nasflops"])["convention"] == "flops"
    path = write_results(tmp_path / "res", r, native={"name": pa.array(["a", "b"])})
    back = read_results(path)
    assert back["name"].to_pylist() == ["a", "b"]
    assert back["params"].to_pylist() == r["params"].tolist()
    assert read_metadata(path)["batch_size"] == 2
    with pytest.raises(FileExistsError):
        write_results(path, r)
    with pytest.raises(ValueError, match="clashes"):
        scores_table(r, native={"macs": np.zeros(2)})
    with pytest.raises(ValueError, match="2 rows|rows, expected 2"):
        scores_table(r, native={"x": np.zeros(3)})


def test_write_table_keeps_metadata(run, tmp_path):
    from nasflops.storage import write_table
    t = read_results(run.path, filter=pc.field("r") == 16)
    out = write_table(tmp_path / "small", t)
    back = read_results(out)
    assert back.equals(t) and read_metadata(out) == run.metadata
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_table(out, t)
    write_table(out, t.slice(0, 3), overwrite=True)
    assert read_results(out).num_rows == 3


def test_read_results_projection_filter_zero_copy(run):
    t = read_results(run.path, columns=["arch_id", "macs"], filter=pc.field("r") == 32)
    full = read_results(run.path)
    want = full.filter(pc.field("r") == 32).select(["arch_id", "macs"])
    assert t.column_names == ["arch_id", "macs"] and t.equals(want)
    # numeric columns reach numpy without a copy
    col = full["macs"].chunk(0)
    arr = col.to_numpy(zero_copy_only=True)
    assert arr.ctypes.data == col.buffers()[1].address + col.offset * 8
    dset = read_results(run.path, as_dataset=True)
    assert isinstance(dset, ds.Dataset) and dset.count_rows() == 700
    with pytest.raises(ValueError, match="as_dataset"):
        read_results(run.path, columns=["macs"], as_dataset=True)
    budget = Budget(max_macs=int(np.median(full["macs"].to_numpy())))
    got = read_results(run.path, filter=budget)
    assert got.num_rows == int(budget.mask(full).sum()) > 0


def test_missing_results_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results"):
        read_results(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no result parts"):
        read_results(tmp_path / "empty")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "plain.parquet")
    with pytest.raises(ValueError, match="not written by nasflops"):
        read_metadata(tmp_path / "plain.parquet")


def test_remove_run_only_touches_its_files(run):
    other = os.path.join(run.path, "notes.txt")
    open(other, "w").close()
    storage.remove_run(run.path)
    assert os.listdir(run.path) == ["notes.txt"]


def test_device_by_name(tmp_path):
    """A device can be named: the profile of ``nf.DEVICES``, stored alike."""
    run = score_space(ChainSpace(), n=20, out=tmp_path / "d", device="T4", progress=False)
    assert read_metadata(run.path)["device"]["name"] == "t4"
    direct = nf.score(ChainSpace().sample(20), device=nf.DEVICES["t4"])
    assert np.array_equal(run.read()["latency_s"].to_numpy(), direct["latency_s"])
    with pytest.raises(ValueError, match="unknown device 'tpu'; known: a100"):
        nf.score(ChainSpace().sample(2), device="tpu")
    with pytest.raises(TypeError, match="device must be a nasflops.Device or the name"):
        nf.score(ChainSpace().sample(2), device=7)
