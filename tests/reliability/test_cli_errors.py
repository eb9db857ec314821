"""Every `graphc` failure is one line, `graphc: error: ...`, exit status 1 or 2, no traceback
(graphc/cli.py); `graphc cache info|verify|clear` report and repair the compile cache.
Each command runs as its own process, the way a user runs it."""
import os
import subprocess
import sys

import pytest

from graphc.runtime import threads

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures", "mxnet")
SYMBOL = os.path.join(FIXTURES, "mlp-symbol.json")
PARAMS = os.path.join(FIXTURES, "mlp-0000.params")
CHILD = os.path.join(os.path.dirname(__file__), "cache_child.py")


def graphc(*args, cache_dir=None, timeout=60):
    env = dict(os.environ)
    if cache_dir is not None:
        env["GRAPHC_CACHE_DIR"] = str(cache_dir)
    proc = subprocess.run([sys.executable, "-m", "graphc.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(rc, err, *fragments, status=(1, 2)):
    assert rc in status, (rc, err)
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphc: error: "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture
def fixtures():
    if not os.path.exists(SYMBOL):
        pytest.skip("shared MXNet fixtures are not beside the checkout")


def _non_utf8(tmp_path):
    p = tmp_path / "latin1-symbol.json"
    p.write_bytes('{"nodes": [], "heads": [], "attrs": {"n": "caf\xe9"}}'.encode("latin-1"))
    return p


def _truncated_json(tmp_path):
    p = tmp_path / "cut-symbol.json"
    p.write_text('{"nodes": [{"op": "null", "na')
    return p


def _empty(tmp_path):
    p = tmp_path / "empty-symbol.json"
    p.write_bytes(b"")
    return p


CASES = {
    "missing file": (lambda t: ["inspect", t / "nope-symbol.json"], ["nope-symbol.json", "No such file"], 1),
    "a directory": (lambda t: ["inspect", t], ["Is a directory"], 1),
    "non-UTF-8 file": (lambda t: ["inspect", _non_utf8(t)], ["latin1-symbol.json", "not UTF-8", "0xe9"], 1),
    ".params as the symbol": (lambda t: ["inspect", PARAMS], ["mlp-0000.params", ".params", "--params"], 1),
    "truncated JSON": (lambda t: ["inspect", _truncated_json(t)], ["cut-symbol.json", "JSON"], 1),
    "empty file": (lambda t: ["inspect", _empty(t)], ["empty-symbol.json"], 1),
    "bad --shape": (lambda t: ["inspect", SYMBOL, "--shape", "data=2,x"], ["--shape", "data=2,x"], 2),
    "--shape without '='": (lambda t: ["inspect", SYMBOL, "--shape", "data"], ["--shape"], 2),
    "JSON passed as --params": (lambda t: ["inspect", SYMBOL, "--shape", "data=2,64", "--params", SYMBOL],
                                ["mlp-symbol.json", "0x112"], 1),
    "missing --params file": (lambda t: ["inspect", SYMBOL, "--shape", "data=2,64", "--params", t / "no.params"],
                              ["no.params"], 1),
    "unknown dtype": (lambda t: ["inspect", SYMBOL, "--shape", "data=2,64", "--dtype", "float7"], ["--dtype", "float7"], 2),
    "no command": (lambda t: [], ["command"], 2),
    "unknown command": (lambda t: ["compile"], ["compile"], 2),
    "unknown cache action": (lambda t: ["cache", "shrink"], ["shrink"], 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_error_is_one_line(case, fixtures, tmp_path):
    make_args, fragments, status = CASES[case]
    rc, out, err = graphc(*make_args(tmp_path), cache_dir=tmp_path / "cache")
    assert_one_line_error(rc, err, *fragments, status=(status,))
    assert out == ""


def test_a_good_file_still_prints_its_graph(fixtures, tmp_path):
    rc, out, err = graphc("inspect", SYMBOL, "--shape", "data=2,64", "--params", PARAMS)
    assert rc == 0 and err == "" and "FullyConnected" in out


def _populate(cache_dir, hidden):
    proc = subprocess.run([sys.executable, CHILD, "run", "relu", str(hidden)], capture_output=True, text=True,
                          env=dict(os.environ, GRAPHC_CACHE_DIR=str(cache_dir)), timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_cache_info_verify_and_clear(tmp_path):
    d = tmp_path / "cache"
    for hidden in (6, 7):
        _populate(d, hidden)
    pool = threads.pool_cache_key() + ".o"      # the worker pool's module, cached beside them
    entries = sorted(p for p in d.iterdir() if p.suffix == ".o" and p.name != pool)
    assert len(entries) == 2 and (d / pool).exists()
    total = sum(p.stat().st_size for p in d.iterdir() if p.suffix == ".o")

    rc, out, err = graphc("cache", "info", cache_dir=d)
    assert rc == 0 and err == ""
    assert str(d) in out and "entries:   3" in out and f"({total} bytes)" in out and "1073741824" in out

    rc, out, err = graphc("cache", "verify", cache_dir=d)
    assert rc == 0 and "3 entries checked, 0 refused" in out, out + err

    damaged = entries[0]
    data = bytearray(damaged.read_bytes())
    data[-10] ^= 0x55
    damaged.write_bytes(bytes(data))
    rc, out, err = graphc("cache", "verify", cache_dir=d)
    assert f"{damaged}: bad: object code SHA-256" in out
    assert_one_line_error(rc, err, "1 entry", "would be refused", "--remove", status=(1,))
    assert damaged.exists()
    rc, out, err = graphc("cache", "verify", "--remove", cache_dir=d)
    assert rc == 0 and "(removed)" in out and not damaged.exists() and entries[1].exists(), out + err

    rc, out, err = graphc("cache", "clear", cache_dir=d)
    assert rc == 0 and "removed 2 entries" in out
    assert [p for p in d.iterdir() if p.suffix == ".o"] == []
    rc, out, err = graphc("cache", "info", cache_dir=d)
    assert rc == 0 and "entries:   0" in out


def test_cache_info_names_an_untrusted_directory(tmp_path):
    d = tmp_path / "cache"
    d.mkdir()
    os.chmod(d, 0o777)
    rc, out, err = graphc("cache", "info", cache_dir=d)
    assert rc == 0 and "not used" in out and "0o777" in out
    rc, out, err = graphc("cache", "verify", cache_dir=d)
    assert_one_line_error(rc, err, str(d), "writable by group or others", status=(1,))
