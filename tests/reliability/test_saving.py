"""Saving survives being killed, failing, and running beside another save.

Every graphc writer (nd.save, save_parameters, ParameterDict.save, export, Symbol.save,
Trainer.save_states) replaces its file atomically: a reader sees the old file or the new one,
never a mix, and a save killed with SIGKILL leaves the old file loadable. Its temporary file
cannot be removed by a dead process, so the next save of the same path removes it, but never
the temporary file of a save still running in another process.
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import graphc as mx
from graphc import nd, gluon
from graphc.formats import atomic
from graphc.formats.atomic import atomic_write
from graphc.gluon import nn

BIG_ELEMS = 16 << 20        # 64 MB of float32: a save takes long enough to be caught mid-write
TIMEOUT = 60


def temps(directory):
    return sorted(n for n in os.listdir(directory) if n.endswith(".tmp"))


def child(code, **kw):
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def kill_mid_save(path, attempts=6):
    """Start a process that nd.saves a 64 MB array to `path`; SIGKILL it as soon as its temporary
    file appears. Returns True when the kill landed mid-save (the temporary file outlived it)."""
    directory = os.path.dirname(path)
    code = (f"import numpy as np, graphc as mx\n"
            f"a = mx.nd.array(np.full({BIG_ELEMS}, 7, np.float32))\n"
            f"print('go', flush=True)\n"
            f"mx.nd.save({path!r}, [a])\n")
    for _ in range(attempts):
        before = set(temps(directory))
        p = child(code)
        try:
            assert p.stdout.readline().strip() == "go", p.stderr.read()
            deadline = time.monotonic() + TIMEOUT
            while not set(temps(directory)) - before:
                if p.poll() is not None or time.monotonic() > deadline:
                    break
            p.send_signal(signal.SIGKILL)
            p.wait(TIMEOUT)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        if set(temps(directory)) - before:
            return True
        nd.save(path, [nd.array([1.0, 2.0, 3.0])])   # it finished first: restore the old file, retry
    return False


def test_sigkill_mid_save_keeps_the_old_file_and_the_next_save_removes_the_orphans(tmp_path):
    path = str(tmp_path / "model.params")
    nd.save(path, [nd.array([1.0, 2.0, 3.0])])
    seen = []
    for _ in range(3):
        assert kill_mid_save(path), "could not kill the writer mid-save"
        np.testing.assert_array_equal(nd.load(path)[0].asnumpy(), [1.0, 2.0, 3.0])
        # each killed save removed the orphan of the one before: repeated kills never pile up
        (orphan,) = temps(tmp_path)
        assert orphan not in seen
        seen.append(orphan)
    # a fresh process saves the same path: the orphan goes, the new file is complete
    p = subprocess.run([sys.executable, "-c", f"import graphc as mx; mx.nd.save({path!r}, [mx.nd.array([4.0, 5.0])])"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    assert temps(tmp_path) == []
    np.testing.assert_array_equal(nd.load(path)[0].asnumpy(), [4.0, 5.0])


def test_orphans_of_other_files_are_left_alone(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, timeout=TIMEOUT)
    pid = int(dead.stdout)
    host = atomic._host_tag()
    mine = tmp_path / f".a.params.graphc-{host}-{pid}-0123abcd.tmp"
    legacy = tmp_path / f".a.params.{pid}.0123abcd.tmp"          # the name before host tags
    other = tmp_path / f".b.params.graphc-{host}-{pid}-0123abcd.tmp"
    longer = tmp_path / f".a.params.bak.graphc-{host}-{pid}-0123abcd.tmp"
    unrelated = tmp_path / ".a.params.notes.tmp"
    for f in (mine, legacy, other, longer, unrelated):
        f.write_bytes(b"x" * 100)
    nd.save(str(tmp_path / "a.params"), [nd.array([1.0])])
    assert not mine.exists() and not legacy.exists()
    assert other.exists() and longer.exists() and unrelated.exists()


def test_a_concurrent_save_in_progress_keeps_its_temporary_file(tmp_path):
    path = str(tmp_path / "shared.params")
    code = ("import sys\n"
            "from graphc.formats.atomic import atomic_write\n"
            "def write(f):\n"
            "    f.write(b'from the other process')\n"
            "    print('writing', flush=True)\n"
            "    sys.stdin.readline()\n"
            f"atomic_write({path!r}, write)\n"
            "print('done', flush=True)\n")
    p = child(code)
    try:
        assert p.stdout.readline().strip() == "writing", p.stderr.read()
        (theirs,) = temps(tmp_path)
        nd.save(path, [nd.array([1.0])])              # our save runs while theirs is open
        assert temps(tmp_path) == [theirs]
        np.testing.assert_array_equal(nd.load(path)[0].asnumpy(), [1.0])
        out, err = p.communicate("\n", timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and out.strip() == "done", err
    assert open(path, "rb").read() == b"from the other process"
    assert temps(tmp_path) == []


def test_a_stale_temporary_file_from_another_host_is_removed_a_fresh_one_kept(tmp_path):
    fresh = tmp_path / f".m.params.graphc-00000000-{os.getpid()}-0123abcd.tmp"
    stale = tmp_path / f".m.params.graphc-00000000-{os.getpid()}-4567abcd.tmp"
    for f in (fresh, stale):
        f.write_bytes(b"x")
    then = time.time() - atomic.STALE_SECONDS - 60
    os.utime(stale, (then, then))
    nd.save(str(tmp_path / "m.params"), [nd.array([1.0])])
    assert fresh.exists() and not stale.exists()


def test_a_temporary_file_of_a_recycled_pid_is_an_orphan(tmp_path):
    # the pid is alive (this test's parent) but started long after the file was last written
    fake = tmp_path / f".m.params.graphc-{atomic._host_tag()}-{os.getppid()}-0123abcd.tmp"
    fake.write_bytes(b"x")
    os.utime(fake, (1e9, 1e9))               # 2001: older than any running process...
    atomic.STALE_SECONDS, saved = 1e12, atomic.STALE_SECONDS   # ...and not removed for its age
    try:
        if atomic._process_start_time(os.getppid()) is None:
            pytest.skip("no /proc: process start times are unknown here")
        nd.save(str(tmp_path / "m.params"), [nd.array([1.0])])
    finally:
        atomic.STALE_SECONDS = saved
    assert not fake.exists()


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_writer_that_fails_midway_leaves_the_old_file_and_no_temporary_file(tmp_path, error):
    path = tmp_path / "x.bin"
    path.write_bytes(b"old contents")

    def write(f):
        f.write(b"\0" * (4 << 20))
        raise error
    with pytest.raises(type(error)):
        atomic_write(path, write)
    assert path.read_bytes() == b"old contents"
    assert temps(tmp_path) == []


def test_an_unsavable_value_leaves_the_old_file(tmp_path):
    path = str(tmp_path / "x.params")
    nd.save(path, {"w": nd.array([1.0, 2.0])})
    with pytest.raises(mx.GraphcError, match="names must be strings"):
        mx.formats.save_params(path, {"w": np.ones(3, np.float32), 7: np.ones(2, np.float32)})
    with pytest.raises(mx.GraphcError, match="complex64"):
        mx.formats.save_params(path, {"w": np.ones(3, np.complex64)})
    np.testing.assert_array_equal(nd.load(path)["w"].asnumpy(), [1.0, 2.0])
    assert temps(tmp_path) == []


def _save_paths(tmp_path):
    """(name, target file, save function) for every graphc writer."""
    net = nn.HybridSequential()
    net.add(nn.Dense(4, activation="relu"), nn.Dense(2))
    net.initialize()
    net.hybridize()
    net(nd.ones((1, 3)))
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.1})
    with mx.autograd.record():
        loss = net(nd.ones((1, 3))).sum()
    loss.backward()
    trainer.step(1)
    sym = mx.sym.relu(mx.sym.var("data"))
    t = lambda name: str(tmp_path / name)   # noqa: E731
    return [
        ("nd.save", t("nd.params"), lambda f: nd.save(f, [nd.ones((2, 2))])),
        ("Block.save_parameters", t("net.params"), net.save_parameters),
        ("ParameterDict.save", t("dict.params"), lambda f: net.collect_params().save(f)),
        ("Trainer.save_states", t("trainer.states"), trainer.save_states),
        ("Symbol.save", t("sym.json"), sym.save),
        ("HybridBlock.export (symbol)", t("exp-symbol.json"), lambda f: net.export(t("exp"))),
        ("HybridBlock.export (params)", t("exp-0000.params"), lambda f: net.export(t("exp"))),
    ]


def test_every_save_path_is_atomic_when_the_disk_fails(tmp_path, monkeypatch):
    """The disk fails at fsync of the target's temporary file (as a full disk or an I/O error
    reports itself): every writer raises, and its old file is untouched. A writer that wrote in
    place (or without fsync) would leave it changed."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to tell which file an fsync is for")
    paths = _save_paths(tmp_path)
    for name, target, _ in paths:
        with open(target, "wb") as f:
            f.write(b"old " + name.encode())
    real_fsync, failing = os.fsync, {}

    def fsync(fd):
        written = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if written.startswith("." + failing["base"] + "."):
            raise OSError(5, "Input/output error")
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    for name, target, save in paths:
        failing["base"] = os.path.basename(target)
        with pytest.raises(OSError, match="Input/output error"):
            save(target)
        assert open(target, "rb").read() == b"old " + name.encode(), name
        assert temps(tmp_path) == [], name
    monkeypatch.undo()
    for name, target, save in paths:
        save(target)
        assert open(target, "rb").read() != b"old " + name.encode(), name
    assert temps(tmp_path) == []
