"""A real dask.distributed cluster: a scheduler and worker processes on loopback.

Scoring through joblib's dask backend must give the same dataset as the
threaded run, and the same arrays through ``score_chunks``.
"""
import os

import joblib
import numpy as np
import pytest

import nasflops as nf
from nasflops.engine import score_chunks
from nasflops.options import ScoringOptions
from nasflops.pipeline import score_space
from nasflops.storage import list_parts, read_metadata

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from tests import chain_space  # noqa: E402
from tests.chain_space import ChainSpace, assert_tables_equal  # noqa: E402


@pytest.fixture(scope="module")
def client():
    # workers are separate processes that cannot import this test directory:
    # ship the synthetic space by value
    cloudpickle.register_pickle_by_value(chain_space)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None,
                                       worker_dashboard_address=None)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()
        cloudpickle.unregister_pickle_by_value(chain_space)


def test_cluster_has_worker_processes(client):
    pids = client.run(os.getpid)
    assert len(pids) == 2 and os.getpid() not in pids.values()


def test_score_space_on_cluster_equals_threads(client, tmp_path):
    space = ChainSpace(invalid=0.02)
    ref = score_space(space, n=4000, seed=21, out=tmp_path / "threads", chunk_size=500,
                      n_jobs=2, progress=False)
    with distributed.get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
        run = score_space(space, n=4000, seed=21, out=tmp_path / "dask", chunk_size=700,
                          n_jobs=2, progress=False)
    # the chunks really ran on the workers (6 chunk tasks, maybe batched)
    assert stream.data and {t["worker"] for t in stream.data} <= set(client.run(os.getpid))
    assert run.parts_written == len(list_parts(tmp_path / "dask")) == 6
    assert_tables_equal(ref.read(), run.read())
    meta_ref, meta = read_metadata(ref.path), read_metadata(run.path)
    assert {k: v for k, v in meta.items() if k != "chunk_size"} == \
        {k: v for k, v in meta_ref.items() if k != "chunk_size"}
    # the parts were written by the workers, not by this process
    assert not [f for f in os.listdir(run.path) if f.endswith(".incomplete")]


def test_score_chunks_on_cluster(client):
    batch = ChainSpace().sample(3000, seed=5)
    opts = ScoringOptions.make("flops")
    want = score_chunks(batch, opts, n_jobs=1).arrays
    with joblib.parallel_config(backend="dask"):
        got = score_chunks(batch, opts, n_jobs=2, chunk_size=400).arrays
    for a, b in zip(want[:3], got[:3]):
        assert np.array_equal(a, b)
