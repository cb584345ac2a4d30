"""Fault injection on results datasets: corrupt, truncated, swapped and lost
parts, deleted or garbled metadata, read-only and full disks, concurrent
writers.  Every fault ends in a clear error naming the file, or in a repair
that says what it repaired; never in a wrong number read back silently."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow.parquet as pq
import pytest

import nasflops as nf
from nasflops import analytics
from nasflops.pipeline import score_space
from nasflops.storage import (LOCK_FILE, RUN_FILE, CorruptResultsError, RunLock, RunLockedError,
                              list_parts, open_dataset, read_metadata, read_results)
from tests.chain_space import ChainSpace, assert_tables_equal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = dict(n=1000, seed=5, chunk_size=250, progress=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The dataset as written, read back before anything was done to it."""
    out = tmp_path_factory.mktemp("ref") / "run"
    return score_space(ChainSpace(), out=out, **ARGS).read()


@pytest.fixture
def run(tmp_path):
    return str(score_space(ChainSpace(), out=tmp_path / "run", **ARGS).path)


def garble(path, offset=None, n=64):
    """Overwrite ``n`` bytes in the middle of a file (its footer stays intact)."""
    data = bytearray(open(path, "rb").read())
    at = len(data) // 2 if offset is None else offset
    data[at:at + n] = bytes((b ^ 0x5A) for b in data[at:at + n])
    open(path, "wb").write(data)


def readers(path):
    """Every way results are read: each must refuse a damaged dataset."""
    return {
        "read_results": lambda: read_results(path),
        "read_results(columns)": lambda: read_results(path, columns=["arch_id"]),
        "open_dataset": lambda: open_dataset(path).to_table(),
        "quantiles (stats)": lambda: analytics.quantiles(path, "macs"),
        "filter_results (filter)": lambda: analytics.filter_results(path, nf.Budget(max_macs=10**12)),
    }


def assert_refused(path, fragment):
    for name, read in readers(path).items():
        with pytest.raises(CorruptResultsError, match=fragment) as e:
            read()
        assert "\n" not in str(e.value), name


def resume(path):
    with pytest.warns(RuntimeWarning, match="failed verification"):
        return score_space(ChainSpace(), out=path, resume=True, **ARGS)


@pytest.mark.parametrize("damage", ["garbled", "truncated", "swapped"])
def test_damaged_part_is_refused_on_read_and_rewritten_on_resume(run, reference, damage):
    parts = list_parts(run)
    victim = parts[2]
    if damage == "garbled":           # 64 bytes inside a page, footer intact
        garble(victim)
        assert pq.read_metadata(victim).num_rows == 250     # the footer still looks fine
    elif damage == "truncated":
        with open(victim, "r+b") as fh:
            fh.truncate(os.path.getsize(victim) // 2)
    else:                             # another complete, valid part copied over it
        shutil.copyfile(parts[1], victim)
    assert_refused(run, "part-000002.parquet")
    again = resume(run)
    assert (again.parts_written, again.parts_resumed) == (1, 3)
    assert [name for name, _ in again.parts_repaired] == ["part-000002.parquet"]
    assert_tables_equal(reference, read_results(run))


def test_lost_part_is_refused_then_written_again(run, reference):
    os.remove(list_parts(run)[1])
    assert_refused(run, "part-000001.parquet is missing")
    again = score_space(ChainSpace(), out=run, resume=True, **ARGS)
    assert (again.parts_written, again.parts_resumed, again.parts_repaired) == (1, 3, [])
    assert_tables_equal(reference, read_results(run))


def test_cli_names_the_corrupt_file(run):
    garble(list_parts(run)[0])
    for args in (["stats", run], ["filter", run, "--max-macs", "1G", "-o", run + "-small"]):
        p = subprocess.run([sys.executable, "-m", "nasflops", *args], capture_output=True,
                           text=True, cwd=ROOT, timeout=120)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        assert p.stderr.count("\n") == 1 and "part-000000.parquet is corrupt" in p.stderr
    assert not os.path.exists(run + "-small")


def test_deleted_run_file_falls_back_to_page_checksums(run, reference):
    os.remove(os.path.join(run, RUN_FILE))
    assert_tables_equal(reference, read_results(run))          # the parts alone suffice
    garble(list_parts(run)[3], offset=200)                     # inside the first data pages
    with pytest.raises(CorruptResultsError, match="CRC|checksum"):
        read_results(run)
    # resume verifies every unrecorded part in full: the good ones are kept
    again = resume(run)
    assert (again.parts_written, again.parts_resumed) == (1, 3)
    assert [name for name, _ in again.parts_repaired] == ["part-000003.parquet"]
    assert_tables_equal(reference, read_results(run))
    recorded = json.load(open(os.path.join(run, RUN_FILE)))["parts"]
    assert sorted(recorded) == [os.path.basename(p) for p in list_parts(run).values()]


@pytest.mark.parametrize("content", [b"{garbage", b"", b"[1, 2]", b'{"format": "nasflops-run/1"}',
                                     b"\xff\xfe\x00"])
def test_garbled_run_file_is_named(run, content):
    with open(os.path.join(run, RUN_FILE), "wb") as fh:
        fh.write(content)
    for call in (lambda: read_results(run), lambda: read_metadata(run),
                 lambda: score_space(ChainSpace(), out=run, resume=True, **ARGS)):
        with pytest.raises(CorruptResultsError, match=f"{RUN_FILE} is corrupt"):
            call()
    fresh = score_space(ChainSpace(), out=run, overwrite=True, **ARGS)   # overwrite still works
    assert fresh.parts_written == 4


def test_part_renamed_but_not_recorded_is_verified_then_kept(run, reference):
    """A kill between a part's rename and its record leaves an unrecorded part."""
    run_file = os.path.join(run, RUN_FILE)
    doc = json.load(open(run_file))
    del doc["parts"]["part-000001.parquet"], doc["parts"]["part-000002.parquet"]
    json.dump(doc, open(run_file, "w"))
    garble(list_parts(run)[2], offset=200)
    with pytest.raises(CorruptResultsError, match="CRC"):     # pages checked as they are read
        read_results(run)
    again = resume(run)
    assert (again.parts_written, again.parts_resumed) == (1, 3)
    assert [name for name, _ in again.parts_repaired] == ["part-000002.parquet"]
    assert_tables_equal(reference, read_results(run))


# ------------------------------------------------------------- one writer
def test_second_writer_is_refused_while_the_lock_is_held(tmp_path):
    out = tmp_path / "locked"
    out.mkdir()
    with RunLock(out):
        assert f"pid {os.getpid()}" in (out / LOCK_FILE).read_text()
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            score_space(ChainSpace(), out=out, **ARGS)
        with pytest.raises(RunLockedError):
            nf.write_table(str(out), read_results(score_space(ChainSpace(), out=tmp_path / "o",
                                                              **ARGS).path))
        p = subprocess.run([sys.executable, "-m", "nasflops", "score", "nb201", "-n", "10", "-o",
                            str(out), "--no-progress"], capture_output=True, text=True, cwd=ROOT,
                           timeout=120)
        assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
        assert "being written by another nasflops run" in p.stderr
    assert os.listdir(out) == []           # refused writers touched nothing; the lock is gone
    score_space(ChainSpace(), out=out, **ARGS)
    assert LOCK_FILE not in os.listdir(out)


SLOW_WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from tests.chain_space import ChainSpace
    from nasflops.pipeline import score_space
    score_space(ChainSpace(delay=0.2), n=4000, seed=5, out={out!r}, chunk_size=250,
                progress=False, encode_block=50)
""")


def test_concurrent_writer_process_then_stale_lock(tmp_path, reference):
    out = str(tmp_path / "shared")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER.format(root=ROOT, out=out)])
    try:
        deadline = time.time() + 60
        while not list_parts(out):              # the first writer is under way
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.05)
        for kw in ({}, {"resume": True}, {"overwrite": True}):
            with pytest.raises(RunLockedError, match=f"pid {proc.pid}"):
                score_space(ChainSpace(), out=out, **dict(ARGS, n=4000), **kw)
        proc.send_signal(signal.SIGKILL)        # dies holding the lock
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # the kernel released the dead writer's lock: no stale lock blocks the resume
    done = score_space(ChainSpace(), out=out, resume=True, **dict(ARGS, n=4000))
    assert done.parts_resumed >= 1 and done.parts_written + done.parts_resumed == 16
    whole = read_results(out)
    assert whole["arch_id"].to_pylist() == list(range(4000))
    assert_tables_equal(reference, whole.slice(0, 1000))


# ------------------------------------------------------------- read-only, full disks
def _in_private_mount(size: str, ro: bool, commands: list, tmp_path):
    """Run shell ``commands`` with a fresh tmpfs at ``tmp_path/mnt``, in a private
    mount namespace (nothing leaks out, whatever happens); skip where the
    machine allows no mounts."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    opts = f"size={size}" + (",ro" if ro else "")
    script = f"mount -t tmpfs -o {opts} tmpfs {mnt} || exit 99\n" + "\n".join(commands)
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare is not available")
    p = subprocess.run([unshare, "-m", "sh", "-c", script], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    if p.returncode == 99 or "unshare failed" in p.stderr or "Operation not permitted" in p.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()[:200]}")
    return mnt, p


def _cli(*args) -> str:
    return " ".join([sys.executable, "-m", "nasflops", *map(str, args)])


def _report(tag: str, command: str) -> str:
    """Shell: run ``command``, then print a tagged exit status, the number of
    stderr lines and stderr itself."""
    err = f"/tmp/nasflops-$$-{tag}"
    return (f'{command} 2>{err}; echo "{tag} rc=$? lines=$(wc -l < {err})"; '
            f'sed "s/^/{tag} err: /" {err}; rm -f {err}')


def _results(p, tag):
    lines = p.stdout.splitlines()
    status = next(ln for ln in lines if ln.startswith(f"{tag} rc="))
    err = [ln[len(f"{tag} err: "):] for ln in lines if ln.startswith(f"{tag} err: ")]
    return status, err


def test_read_only_output(tmp_path, run):
    mnt = tmp_path / "mnt"
    _, p = _in_private_mount("1m", True, [
        _report("score", _cli("score", "nb201", "-n", "10", "-o", mnt / "out", "--no-progress")
                + " >/dev/null"),
        _report("filter", _cli("filter", run, "--max-macs", "1G", "-o", mnt / "small") + " >/dev/null"),
    ], tmp_path)
    for tag in ("score", "filter"):
        status, err = _results(p, tag)
        assert status == f"{tag} rc=2 lines=1", (status, err, p.stderr)
        assert "Read-only file system" in err[0] and "Traceback" not in err[0]


def test_full_disk_leaves_complete_parts_or_nothing(tmp_path, run):
    mnt = tmp_path / "mnt"
    cmds = [
        # the first part does not fit: nothing may be left behind
        _report("first", _cli("score", "nb201", "-n", "20000", "--chunk-size", "20000", "-o",
                              mnt / "big", "--no-progress") + " >/dev/null"),
        # some parts fit: they stay, complete and recorded, for --resume
        _report("later", _cli("score", "nb201", "-n", "6000", "--chunk-size", "1000", "-o",
                              mnt / "some", "--no-progress") + " >/dev/null"),
        _report("filter", _cli("filter", run, "--max-macs", "1G", "-o", mnt / "small") + " >/dev/null"),
        f"ls -A {mnt}; echo '--'; ls -A {mnt}/some",
        f"{sys.executable} -c \"import nasflops as nf; print('rows', nf.read_results('{mnt}/some').num_rows)\"",
    ]
    mnt, p = _in_private_mount("96k", False, cmds, tmp_path)
    for tag in ("first", "later", "filter"):
        status, err = _results(p, tag)
        assert status == f"{tag} rc=2 lines=1", (status, err, p.stdout, p.stderr)
        assert "No space left on device" in err[0], err
    listing = p.stdout.split("filter err:")[-1].splitlines()[1:]
    top = listing[:listing.index("--")]
    assert "big" not in top and "small" not in top, p.stdout      # nothing left of those
    some = listing[listing.index("--") + 1:]
    assert RUN_FILE in some and "part-000000.parquet" in some, p.stdout
    assert not [f for f in some if f.endswith(".incomplete")], some
    rows = int(next(ln for ln in p.stdout.splitlines() if ln.startswith("rows "))[5:])
    assert rows == 1000 * sum(f.startswith("part-") for f in some) > 0, p.stdout
