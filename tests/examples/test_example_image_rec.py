"""examples/image_classification.py --rec: builds a .rec from the digits with the im2rec
functions, trains through ImageRecordIter, and leaves no temporary folder behind."""
import glob
import importlib.util
import pathlib
import tempfile

import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "image_classification.py"


@pytest.mark.slow      # ~30 s under pytest (fresh compile cache, GRAPHC_VERIFY=1); 5 s as a script
def test_rec_variant_learns_the_digits_and_removes_its_folder(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("PIL")
    spec = importlib.util.spec_from_file_location("graphc_example_image_rec", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = set(glob.glob(f"{tempfile.gettempdir()}/graphc-digits-rec-*"))
    result = module.main(["--quick", "--rec", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "built digits.rec" in out and "1437 PNG records" in out
    assert result["identical"]
    assert result["test_accuracy"] > 0.3          # chance is 0.1
    assert set(glob.glob(f"{tempfile.gettempdir()}/graphc-digits-rec-*")) == before
