"""Parallel chunked scoring and the streaming Parquet pipeline, on the
synthetic :class:`~tests.chain_space.ChainSpace`."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import nasflops as nf
from nasflops import _core
from nasflops.engine import score_chunks
from nasflops.options import ScoringOptions
from nasflops.pipeline import ScoreRun, score_space
from nasflops.search_spaces import SearchSpace
from nasflops.storage import list_parts, read_metadata, read_results
from tests.chain_space import STAGES, ChainSpace, assert_tables_equal, hand_macs, sorted_table

# ------------------------------------------------------------- the space itself
def test_chain_space_matches_hand_formula():
    space = ChainSpace()
    cols = space.sample_columns(50, seed=3)
    r = nf.score(space.encode_columns(cols))
    want = [hand_macs(w, k, rr) for w, k, rr in zip(cols["w"], cols["k"], cols["r"])]
    assert r["macs"].tolist() == want
    # params: conv weights (no bias) + BN affine + linear with bias
    w, k = cols["w"][0], cols["k"][0]
    cin, p = 3, 0
    for s in range(STAGES):
        p += w[s] * cin * k[s] * k[s] + 2 * w[s]
        cin = w[s]
    assert int(r["params"][0]) == p + cin * 10 + 10


# ---------------------------------------------------------------- score_chunks
def _serial(batch, weights, device=None):
    n = len(batch)
    m = np.empty((n, len(_core.METRICS)), np.int64)
    st, bad = np.empty(n, np.int64), np.empty(n, np.int64)
    lat = np.empty(n) if device else None
    _core.score_range(batch.records, batch.offsets, 0, n, weights, 1, 4, 4, m, st, bad,
                      device.peak_ops_per_s if device else 0.0, device.bytes_per_s if device else 0.0, lat)
    return m, st, bad, lat


@pytest.mark.parametrize("n_jobs,chunk_size", [(1, None), (1, 7), (2, None), (2, 1), (2, 13), (-1, 100)])
def test_score_chunks_identical(n_jobs, chunk_size):
    space = ChainSpace(invalid=0.1)
    batch = space.sample(311, seed=1)
    dev = nf.Device("toy", 1e9, 1e8)
    opts = ScoringOptions.make("flops", device=dev)
    want = _serial(batch, opts.convention.weights, dev)
    got = score_chunks(batch, opts, n_jobs=n_jobs, chunk_size=chunk_size).arrays
    for a, b in zip(want, got):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.any(got[1] != 0)       # some invalid rows went through too


def test_score_chunks_process_backend():
    """No shared memory needed: loky processes give the same arrays as threads."""
    batch = ChainSpace().sample(2000, seed=2)
    opts = ScoringOptions.make("macs")
    want = _serial(batch, opts.convention.weights)
    with joblib.parallel_config(backend="loky"):
        got = score_chunks(batch, opts, n_jobs=2, chunk_size=500).arrays
    for a, b in zip(want[:3], got[:3]):
        assert np.array_equal(a, b)
    assert got[3] is None


# ---------------------------------------------------------------- score_space
def test_score_space_rows_equal_direct_scoring(tmp_path):
    space = ChainSpace(invalid=0.05)
    run = score_space(space, n=1000, seed=7, out=tmp_path / "run", convention="flops",
                      chunk_size=300, progress=False)
    assert isinstance(run, ScoreRun)
    assert (run.n, run.n_parts, run.parts_written, run.parts_resumed) == (1000, 4, 4, 0)
    t = read_results(tmp_path / "run")
    assert t["arch_id"].to_pylist() == list(range(1000))          # parts read in order
    cols = space.sample_columns(1000, seed=7)
    direct = nf.score(space.encode_columns(cols), convention="flops", errors="status")
    for m in nf.METRICS:
        assert np.array_equal(t[m].to_numpy(), direct[m]), m
    assert np.array_equal(t["status"].to_numpy(), direct["status"])
    assert t["status"].type == pa.int8()
    assert run.n_invalid == int(np.count_nonzero(direct["status"])) > 0
    assert np.array_equal(t["r"].to_numpy(), cols["r"])
    assert np.array_equal(np.stack(t["w"].to_numpy(zero_copy_only=False)), cols["w"])
    bad = t.filter(pc.field("status") != 0)
    assert set(bad["macs"].to_pylist()) == {-1}


@pytest.mark.parametrize("n_jobs,chunk_size,backend", [
    (1, 1000, None), (2, 1000, None), (2, 333, None), (1, 64, None), (2, 777, "loky")])
def test_score_space_identical_any_jobs_chunks_backend(tmp_path, n_jobs, chunk_size, backend):
    space = ChainSpace(invalid=0.02)
    ref = score_space(space, n=2500, seed=11, out=tmp_path / "ref", chunk_size=2500,
                      n_jobs=1, progress=False).read()
    if backend is None:
        run = score_space(space, n=2500, seed=11, out=tmp_path / "x", chunk_size=chunk_size,
                          n_jobs=n_jobs, progress=False, encode_block=100)
    else:
        with joblib.parallel_config(backend=backend):
            run = score_space(space, n=2500, seed=11, out=tmp_path / "x", chunk_size=chunk_size,
                              n_jobs=n_jobs, progress=False)
    assert run.n_parts == -(-2500 // chunk_size) == len(list_parts(tmp_path / "x"))
    assert_tables_equal(ref, run.read())


def test_enumerate_whole_space(tmp_path):
    space = ChainSpace()
    run = score_space(space, n="all", out=tmp_path / "all", chunk_size=500, n_jobs=2, progress=False)
    t = run.read()
    assert t.num_rows == space.size == 2187
    assert t["arch_id"].to_pylist() == list(range(2187))
    cols = space.enumerate_columns()
    assert np.array_equal(t["r"].to_numpy(), cols["r"])
    want = [hand_macs(w, k, r) for w, k, r in zip(cols["w"], cols["k"], cols["r"])]
    assert t["macs"].to_pylist() == want
    assert read_metadata(tmp_path / "all")["mode"] == "enumerate"
    # every candidate once
    assert len({(tuple(w), tuple(k), r) for w, k, r in zip(cols["w"], cols["k"], cols["r"])}) == 2187


def test_argument_errors(tmp_path):
    class Unbounded(ChainSpace):
        name = "unbounded"
        size = None
        _enumerate_block = SearchSpace._enumerate_block

    with pytest.raises(ValueError, match="cannot be enumerated.*pass n="):
        score_space(Unbounded(), n=None, out=tmp_path / "u", progress=False)
    for bad in (-1, 2.5, "many"):
        with pytest.raises(ValueError, match="n must be"):
            score_space(ChainSpace(), n=bad, out=tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="chunk_size"):
        score_space(ChainSpace(), n=10, chunk_size=0, out=tmp_path / "c", progress=False)
    with pytest.raises(ValueError, match="unknown convention"):
        score_space(ChainSpace(), n=10, convention="nope", out=tmp_path / "d", progress=False)


def test_existing_run_needs_resume_or_overwrite(tmp_path):
    out = tmp_path / "run"
    score_space(ChainSpace(), n=500, seed=1, out=out, chunk_size=200, progress=False)
    with pytest.raises(FileExistsError, match="resume=True"):
        score_space(ChainSpace(), n=500, seed=1, out=out, chunk_size=200, progress=False)
    again = score_space(ChainSpace(), n=500, seed=1, out=out, chunk_size=200, progress=False, resume=True)
    assert (again.parts_written, again.parts_resumed) == (0, 3)
    for kw, what in [({"seed": 2}, "seed"), ({"chunk_size": 100}, "chunk_size"), ({"n": 600}, "'n'|n:"),
                     ({"convention": "flops"}, "convention"), ({"batch_size": 2}, "batch_size")]:
        args = dict(n=500, seed=1, chunk_size=200) | kw
        with pytest.raises(ValueError, match=f"cannot resume.*({what})"):
            score_space(ChainSpace(), out=out, progress=False, resume=True, **args)
    with pytest.raises(ValueError, match="space"):
        score_space(ChainSpace(invalid=0.5), n=500, seed=1, chunk_size=200, out=out,
                    progress=False, resume=True)
    new = score_space(ChainSpace(), n=300, seed=2, out=out, chunk_size=100, progress=False, overwrite=True)
    assert new.parts_written == 3 and sorted(list_parts(out)) == [0, 1, 2]
    assert read_metadata(out)["seed"] == 2


def test_resume_rewrites_missing_and_damaged_parts(tmp_path):
    space = ChainSpace()
    ref = score_space(space, n=1000, seed=5, out=tmp_path / "ref", chunk_size=1000, progress=False).read()
    out = tmp_path / "run"
    score_space(space, n=1000, seed=5, out=out, chunk_size=250, progress=False)
    parts = list_parts(out)
    os.remove(parts[1])                                   # lost
    with open(parts[2], "wb") as fh:                      # truncated by something else
        fh.write(b"PAR1garbage")
    (out / ".part-000003.parquet.deadbeef.incomplete").write_bytes(b"half")
    with pytest.warns(RuntimeWarning, match=r"part-000002.*failed verification.*writing it again"):
        run = score_space(space, n=1000, seed=5, out=out, chunk_size=250, progress=False,
                          resume=True)
    assert (run.parts_written, run.parts_resumed) == (2, 2)
    assert not [f for f in os.listdir(out) if f.endswith(".incomplete")]
    assert_tables_equal(ref, read_results(out))


KILL_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from tests.chain_space import ChainSpace
    from nasflops.pipeline import score_space
    score_space(ChainSpace(invalid=0.01, delay=0.15), n=6000, seed=3, out={out!r},
                chunk_size=200, n_jobs=1, progress=False, resume=True, encode_block=50)
""")


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    out = str(tmp_path / "killed")
    script = KILL_SCRIPT.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               out=out)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 120
        while len(list_parts(out)) < 3:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    n_done = len(list_parts(out))
    assert 3 <= n_done < 30
    # the dataset as left is readable: complete parts only
    assert read_results(out).num_rows == 200 * n_done

    space = ChainSpace(invalid=0.01)
    run = score_space(space, n=6000, seed=3, out=out, chunk_size=200, progress=False, resume=True)
    assert run.parts_resumed == n_done and run.parts_written == 30 - n_done
    assert run.rows_written == 6000 - 200 * n_done and run.rate > 0
    assert not [f for f in os.listdir(out) if f.endswith(".incomplete")]
    whole = score_space(space, n=6000, seed=3, out=tmp_path / "whole", chunk_size=200,
                        progress=False).read()
    got = read_results(out)
    assert_tables_equal(whole, got)
    assert got["arch_id"].to_pylist() == list(range(6000))
    assert read_metadata(out) == read_metadata(tmp_path / "whole")


def test_progress_bar_shows_rate(tmp_path, capfd):
    score_space(ChainSpace(), n=3000, seed=0, out=tmp_path / "p", chunk_size=1000, progress=True)
    err = capfd.readouterr().err
    assert "cand/s" in err and "3000/3000" in err


def test_space_by_name_is_looked_up(tmp_path, monkeypatch):
    from nasflops import search_spaces
    monkeypatch.setitem(search_spaces._USER, "chain-test", ChainSpace)
    run = score_space("chain-test", n=10, out=tmp_path / "n", progress=False)
    assert run.metadata["space"] == {"name": "chain", "params": {"invalid": 0.0}}


@pytest.mark.parametrize("name,native", [("ofa-mbv3", ["ks", "e", "d", "r"]), ("nb201", ["arch"])])
def test_real_spaces_native_columns(tmp_path, name, native):
    space = nf.search_spaces.get_space(name)
    run = score_space(space, n=3000, seed=1, out=tmp_path / name, chunk_size=1000, n_jobs=2,
                      progress=False)
    t = run.read()
    assert t.column_names[:1 + len(native)] == ["arch_id"] + native
    direct = nf.score(space.sample(3000, seed=1), errors="status")
    for m in nf.METRICS:
        assert np.array_equal(t[m].to_numpy(), direct[m]), m
    assert read_metadata(run.path)["space"]["name"] == space.name


def test_memory_does_not_grow_with_n(tmp_path):
    """Peak numpy memory (tracemalloc sees numpy's allocations) is set by the
    chunk size, not by n; Arrow memory is all released after the run."""
    import tracemalloc
    space = ChainSpace()
    # warm-up: lazy imports and caches allocate once
    score_space(space, n=20_000, seed=0, out=tmp_path / "warm", chunk_size=10_000, progress=False)
    peaks = []
    # both sizes span several sampling blocks, so the bounded cache of recent
    # blocks (base.SearchSpace._sampled_block) is full in both runs
    for n in (200_000, 800_000):
        before = pa.total_allocated_bytes()
        tracemalloc.start()
        score_space(space, n=n, seed=0, out=tmp_path / f"m{n}", chunk_size=10_000, n_jobs=1,
                    progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert pa.total_allocated_bytes() <= before
    # memory growing with n would be 4x here
    assert peaks[0] > 1_000_000 and peaks[1] < 1.5 * peaks[0], peaks
