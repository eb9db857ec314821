"""The compile cache is trustworthy and bounded (runtime/cache.py, cache_store.py, cache_entry.py).

Fault injection: an MLP's entry is damaged in every way found to crash or mislead the old cache
(truncation, flipped bytes, another model's entry, junk, symbolic links, a FIFO, permissions,
ownership), then a fresh process runs the model. It must give the numpy reference's answer,
not crash or hang, say once (a CacheWarning naming the path) what it refused, and leave an
intact entry behind. Planted object code that would exit the process with status 42 if it ever
ran checks that refused entries are never executed. Every run is a subprocess with a timeout.
"""
import json
import os
import shutil
import stat
import subprocess
import sys
import time

import pytest

from graphc.runtime import cache, cache_store, threads
from graphc.runtime.cache_entry import BadEntry, decode_entry, encode_entry

CHILD = os.path.join(os.path.dirname(__file__), "cache_child.py")
TIMEOUT = 120
OTHER_UID = 12345
EVIL_EXIT = 42
# if this code ever runs, the process exits with status 42 at once
EVIL_IR = """
declare void @_exit(i32)
define void @seg0(i8** %args) {
  call void @_exit(i32 42)
  unreachable
}
"""


def child(cache_dir, *args, env=None):
    """Run cache_child.py with GRAPHC_CACHE_DIR=cache_dir -> (exit status, result dict or None,
    number of CacheWarnings, stderr)."""
    full_env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache_dir), PYTHONWARNINGS="default")
    full_env.pop("GRAPHC_CACHE_MAX_BYTES", None)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, CHILD, *map(str, args)], env=full_env, capture_output=True,
                          text=True, timeout=TIMEOUT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    result = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
    return proc.returncode, result, proc.stderr.count("CacheWarning:"), proc.stderr


def only_entry(directory):
    """The program's entry (the worker pool's module is cached beside it)."""
    pool = threads.pool_cache_key() + ".o"
    names = [n for n in os.listdir(directory) if n.endswith(".o") and n != pool]
    assert len(names) == 1, names
    return os.path.join(directory, names[0])


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """A cache holding the relu MLP's entry, and the entry of a tanh MLP of the same shapes."""
    base = tmp_path_factory.mktemp("populated")
    for act in ("relu", "tanh"):
        rc, res, warned, err = child(base / act, "run", act, 16)
        assert rc == 0 and res["source"] == "compiled" and res["err"] < 1e-4, err
        assert warned == 0, err
    relu, tanh = only_entry(base / "relu"), only_entry(base / "tanh")
    assert os.path.basename(relu) != os.path.basename(tanh)
    return {"dir": base / "relu", "entry": relu, "key": os.path.basename(relu)[:-2], "other": tanh}


@pytest.fixture
def damaged(populated, tmp_path):
    """A private copy of the populated cache: (directory, entry path, key, original bytes)."""
    d = tmp_path / "cache"
    shutil.copytree(populated["dir"], d)
    os.chmod(d, 0o700)
    path = os.path.join(d, os.path.basename(populated["entry"]))
    with open(path, "rb") as f:
        original = f.read()
    return d, path, populated["key"], original


def header_end(data):
    return 16 + int.from_bytes(data[12:16], "little")


def _truncate(n):
    def damage(path, data, ctx):
        with open(path, "wb") as f:
            f.write(data[:n if n >= 0 else len(data) // 2])
    return damage


def _flip(where):
    def damage(path, data, ctx):
        offset = where(data)
        buf = bytearray(data)
        buf[offset] ^= 0xFF
        with open(path, "wb") as f:
            f.write(bytes(buf))
    return damage


def _swap(path, data, ctx):
    shutil.copyfile(ctx["other"], path)


def _junk(path, data, ctx):
    with open(path, "wb") as f:
        f.write(os.urandom(4096))


def _symlink_to(target):
    def damage(path, data, ctx):
        os.unlink(path)
        os.symlink(target(ctx), path)
    return damage


def _valid_copy_elsewhere(ctx):
    elsewhere = os.path.join(ctx["tmp"], "elsewhere.o")
    shutil.copyfile(ctx["entry"], elsewhere)
    os.chmod(elsewhere, 0o600)
    return elsewhere


def _fifo(path, data, ctx):
    os.unlink(path)
    os.mkfifo(path, 0o600)


def _chmod(mode):
    def damage(path, data, ctx):
        os.chmod(path, mode)
    return damage


def _chown(path, data, ctx):
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    os.chown(path, OTHER_UID, OTHER_UID)


DAMAGE = {
    "truncated-0": _truncate(0),
    "truncated-1": _truncate(1),
    "truncated-64": _truncate(64),
    "truncated-100": _truncate(100),
    "truncated-half": _truncate(-1),
    "flipped-magic": _flip(lambda d: 0),
    "flipped-format": _flip(lambda d: 9),
    "flipped-header-length": _flip(lambda d: 13),
    "flipped-header-text": _flip(lambda d: 40),
    "flipped-code-start": _flip(lambda d: header_end(d)),
    "flipped-code-middle": _flip(lambda d: (header_end(d) + len(d)) // 2),
    "flipped-last-byte": _flip(lambda d: len(d) - 1),
    "swapped-with-another-model": _swap,
    "junk": _junk,
    "symlink-to-dev-zero": _symlink_to(lambda ctx: "/dev/zero"),
    "symlink-to-valid-entry": _symlink_to(_valid_copy_elsewhere),
    "fifo": _fifo,
    "mode-0666": _chmod(0o666),
    "owned-by-another-user": _chown,
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_entry_is_refused_recompiled_and_replaced(how, damaged, populated, tmp_path):
    d, path, key, original = damaged
    DAMAGE[how](path, original, {"other": populated["other"], "entry": populated["entry"], "tmp": tmp_path})
    rc, res, warned, err = child(d, "run", "relu", 16)
    assert rc == 0, f"{how}: exit status {rc}\n{err[-2000:]}"
    assert res["err"] < 1e-4, f"{how}: wrong output (max error {res['err']})"
    assert res["source"] == "compiled"
    assert warned == 1 and path in err, f"{how}: expected one CacheWarning naming {path}\n{err[-2000:]}"
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o600
    assert cache_store.load_entry(str(d), key, cache.host_target(), cache_store.MAX_ENTRY_BYTES) is not None
    assert not [n for n in os.listdir(d) if n.endswith(cache_store.TEMP_SUFFIX)]


def test_an_intact_entry_loads_from_disk_silently(damaged):
    d, path, key, original = damaged
    rc, res, warned, err = child(d, "run", "relu", 16)
    assert rc == 0 and res["source"] == "disk" and res["err"] < 1e-4 and warned == 0, err


def _evil_entry(key, *, bad_hash=False, header_key=None):
    obj = cache.pack_objects([cache.compile_object(EVIL_IR)])   # a program's payload: its objects
    data = bytearray(encode_entry(header_key or key, obj, cache.host_target()))
    if bad_hash:
        digest_at = data.index(b'"sha256": "') + len(b'"sha256": "')
        data[digest_at] = ord("0") if data[digest_at] != ord("0") else ord("1")
    return bytes(data)


PLANTS = {
    "wrong-hash": (lambda key: _evil_entry(key, bad_hash=True), None),
    "header-for-another-key": (lambda key: _evil_entry(key, header_key="f" * 40), None),
    "valid-but-owned-by-another-user": (lambda key: _evil_entry(key), _chown),
    "valid-but-world-writable": (lambda key: _evil_entry(key), _chmod(0o666)),
}


@pytest.mark.parametrize("how", list(PLANTS))
def test_planted_code_is_never_executed(how, damaged):
    d, path, key, _ = damaged
    make, then = PLANTS[how]
    with open(path, "wb") as f:
        f.write(make(key))
    if then:
        then(path, None, None)
    rc, res, warned, err = child(d, "run", "relu", 16)
    assert rc != EVIL_EXIT, f"{how}: the planted object code ran"
    assert rc == 0 and res["err"] < 1e-4 and res["source"] == "compiled", err[-2000:]
    assert warned == 1 and path in err, err[-2000:]


def test_the_planted_code_would_run_if_trusted(damaged):
    """The control for the test above: a fully valid planted entry that this user owns does run
    (the trust boundary is the owner and mode, not the hash), so status 42 means execution."""
    d, path, key, _ = damaged
    with open(path, "wb") as f:
        f.write(_evil_entry(key))
    os.chmod(path, 0o600)
    rc, _, _, _ = child(d, "run", "relu", 16)
    assert rc == EVIL_EXIT


@pytest.mark.parametrize("how", ["mode-0777", "owned-by-another-user"])
def test_an_untrusted_directory_is_not_used(how, damaged):
    d, path, key, original = damaged
    with open(path, "wb") as f:
        f.write(_evil_entry(key))     # would exit 42 if the directory were trusted
    os.chmod(path, 0o600)
    if how == "mode-0777":
        os.chmod(d, 0o777)
    else:
        _chown(d, None, None)
    for _ in range(2):                 # refused every time, not repaired behind the user's back
        rc, res, warned, err = child(d, "run", "relu", 16)
        assert rc == 0 and res["err"] < 1e-4 and res["source"] == "compiled", err[-2000:]
        assert warned == 1 and str(d) in err, err[-2000:]
    assert [n for n in os.listdir(d) if n != threads.pool_cache_key() + ".o"] == [os.path.basename(path)]


def test_a_new_cache_directory_is_private(tmp_path):
    d = tmp_path / "deep" / "cache"
    old = os.umask(0)
    try:
        assert cache_store.prepare_dir(str(d)) is None
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700


def test_an_entry_built_for_a_cpu_without_avx512_is_refused():
    target = dict(cache.host_target())
    other = dict(target, features=target["features"].replace("+avx512f", "-avx512f") + ",+made-up-feature")
    data = encode_entry("k" * 40, b"\x90" * 64, other)
    with pytest.raises(BadEntry) as info:
        decode_entry(data, "k" * 40, target)
    assert info.value.stale and "made-up-feature" in info.value.reason
    assert decode_entry(encode_entry("k" * 40, b"\x90" * 64, target), "k" * 40, target) == b"\x90" * 64


def test_the_key_covers_the_host_and_toolchain(monkeypatch):
    sig = cache.host_signature()
    target = cache.host_target()
    for name in ("features", "cpu", "triple", "llvmlite", "graphc"):
        assert f"{name}={target[name]}" in sig
    key = cache.make_key("graph")
    monkeypatch.setattr(cache, "host_signature", lambda: sig.replace("+avx2", "-avx2") + "|other")
    assert cache.make_key("graph") != key


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(cache_store.os, "fsync", no_space)
    with pytest.raises(OSError):
        cache_store.write_entry(str(tmp_path), "a" * 40, b"data")
    assert os.listdir(tmp_path) == []


def test_disk_cache_size_setting(monkeypatch):
    for text, value in (("", 1 << 30), ("12345", 12345), ("64K", 65536), ("3 MiB", 3 << 20), ("0", 0)):
        monkeypatch.setenv("GRAPHC_CACHE_MAX_BYTES", text)
        assert cache_store.max_bytes() == value
    monkeypatch.setenv("GRAPHC_CACHE_MAX_BYTES", "lots")
    with pytest.warns(cache_store.CacheWarning, match="GRAPHC_CACHE_MAX_BYTES='lots'"):
        assert cache_store.max_bytes() == 1 << 30


def test_lru_trimming_keeps_the_recently_used_entries(tmp_path):
    """Four models, a limit that fits three: writing the fourth evicts the least recently
    used one, and a disk hit counts as a use (the oldest-written survives because it was hit)."""
    sizes, entries = {}, {}
    for hidden in (10, 11, 12, 13):
        d = tmp_path / f"m{hidden}"
        rc, res, _, err = child(d, "run", "relu", hidden)
        assert rc == 0, err
        entries[hidden] = only_entry(d)
        sizes[hidden] = os.path.getsize(entries[hidden])
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    now = time.time()
    for age, hidden in ((300, 10), (200, 11), (100, 12)):
        dst = shared / os.path.basename(entries[hidden])
        shutil.copyfile(entries[hidden], dst)
        os.utime(dst, (now - age, now - age))
    pool = tmp_path / "m10" / (threads.pool_cache_key() + ".o")     # the worker pool's module:
    shutil.copyfile(pool, shared / pool.name)                       # a recent entry, hit by both runs
    limit = sizes[10] + sizes[12] + sizes[13] + os.path.getsize(pool)
    env = {"GRAPHC_CACHE_MAX_BYTES": str(limit)}
    rc, res, warned, err = child(shared, "run", "relu", 10, env=env)     # a hit: 10 becomes recent
    assert rc == 0 and res["source"] == "disk" and warned == 0, err
    rc, res, warned, err = child(shared, "run", "relu", 13, env=env)     # a write: trims
    assert rc == 0 and res["source"] == "compiled" and warned == 0, err
    left = {h for h in entries if os.path.exists(shared / os.path.basename(entries[h]))}
    assert left == {10, 12, 13}
    assert sum(os.path.getsize(p) for p in shared.iterdir()) <= limit


def test_a_zero_limit_turns_the_disk_cache_off(tmp_path):
    rc, res, warned, err = child(tmp_path / "c", "run", "relu", 16, env={"GRAPHC_CACHE_MAX_BYTES": "0"})
    assert rc == 0 and res["source"] == "compiled" and warned == 0, err
    assert not (tmp_path / "c").exists() or os.listdir(tmp_path / "c") == []


@pytest.mark.slow
def test_deleted_blocks_free_their_machine_code(tmp_path):
    """200 create/compile/delete cycles over 10 model sizes with room for 4 programs in memory:
    every deleted block's program is freed, the least recently used code is evicted (so every
    cycle after the first ten reloads from disk), and never more than 4 engines stay loaded."""
    rc, res, warned, err = child(tmp_path / "c", "churn", 200, 10, env={"GRAPHC_CACHE_MAX_PROGRAMS": "4"})
    assert rc == 0, err[-2000:]
    assert res["err"] < 1e-4
    assert res["leaked_programs"] == 0
    assert res["sources"] == {"compiled": 10, "disk": 190}
    assert res["most_live"] <= 4


def test_programs_of_one_key_share_their_code_and_free_it_together(monkeypatch, tmp_path):
    import gc
    import weakref
    from graphc.compiler import compile_graph
    from graphc.ops.builder import GraphBuilder
    from graphc.ops.types import TensorType

    def graph():
        gb = GraphBuilder("shared_code")
        x = gb.var("x", TensorType((2, 5)))
        return gb.build([gb.F.tanh(x) * 3.0])

    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GRAPHC_CACHE_MAX_PROGRAMS", "0")
    cache._memory.clear()
    p1 = compile_graph(graph())
    p2 = compile_graph(graph())
    assert p2.source == "memory" and p1._engine is p2._engine     # in use, so found and shared
    code = weakref.ref(p1._engine)
    del p1, p2
    gc.collect()
    assert code() is None
