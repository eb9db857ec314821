"""The examples' progress: tqdm's bar on a terminal, plain periodic lines anywhere else (a log
file, a pipe, CI); and an example run leaves no temporary folder behind, on success or error."""
import importlib.util
import io
import pathlib
import re
import tempfile

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(f"graphc_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_not_a_terminal_gets_plain_lines_without_carriage_returns():
    progress = load("progress").progress
    out = io.StringIO()
    seen = []
    with progress(range(4), desc="epoch 1/2", unit="batch", every=0.0, leave=True, stream=out) as bar:
        for i in bar:
            seen.append(i)
            bar.set_postfix(loss=f"{1.0 / (i + 1):.3f}")
    text = out.getvalue()
    assert seen == [0, 1, 2, 3]
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 5                      # one per step (every=0), and the last on leaving
    assert re.fullmatch(r"epoch 1/2: 1/4 batch \(25%\), \d+\.\d s, loss=1\.000", lines[0]), lines[0]
    assert re.fullmatch(r"epoch 1/2: 4/4 batch \(100%\), \d+\.\d s, loss=0\.250", lines[3]), lines[3]


def test_plain_lines_come_at_most_every_period():
    progress = load("progress").progress
    out = io.StringIO()
    bar = progress(total=1000, desc="steps", every=3600.0, stream=out)
    for _ in range(1000):
        bar.update(1)
    bar.close()                                 # leave=False: no closing line
    assert out.getvalue() == ""


def test_a_terminal_gets_tqdms_bar():
    from tqdm import tqdm
    bar = load("progress").progress(range(3), desc="x", stream=Terminal())
    assert isinstance(bar, tqdm)
    assert list(bar) == [0, 1, 2]


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """tempfile's folder for the test: whatever an example leaves there is visible."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_an_example_removes_its_temporary_folders(private_tmp, capsys):
    pytest.importorskip("scipy")
    result = load("recommendation").main(["--quick", "--epochs", "1"])
    assert result["identical"]
    assert "(a temporary folder; --out-dir keeps them)" in capsys.readouterr().out
    assert list(private_tmp.iterdir()) == []


def test_an_example_removes_its_temporary_folders_when_it_fails(private_tmp, monkeypatch):
    pytest.importorskip("scipy")
    example = load("recommendation")

    def fail(*args, **kwargs):
        raise RuntimeError("reload failed")
    monkeypatch.setattr(example.gluon.SymbolBlock, "imports", staticmethod(fail))
    with pytest.raises(RuntimeError, match="reload failed"):
        example.main(["--quick", "--epochs", "1"])
    assert list(private_tmp.iterdir()) == []
