"""`graphc im2rec`: lists and packs an image folder as MXNet's tools/im2rec.py does (checked live
against MXNet's own script when the MXNet venv exists)."""
import os
import subprocess

import numpy as np
import pytest

pytest.importorskip("PIL")

import graphc as mx  # noqa: E402
from graphc.cli import main  # noqa: E402
from graphc.image.cv_resize import resize_bilinear  # noqa: E402

MXNET_PY = os.path.join(os.path.dirname(__file__), "..", "..", "bench", ".venvs", "mxnet", "bin", "python")
IM2REC = os.path.join(os.path.dirname(MXNET_PY), "..", "lib", "python3.11", "site-packages", "mxnet", "tools",
                      "im2rec.py")


@pytest.fixture
def folder(tmp_path):
    """root/{cat,dog,dog/puppy}/ with PNG and JPEG images and a file that is not an image."""
    rng = np.random.RandomState(0)
    root = tmp_path / "root"
    images = {}
    for rel, (h, w) in {"cat/a.png": (10, 14), "cat/b.png": (12, 9), "cat/c.jpg": (16, 16), "dog/d.png": (8, 20),
                        "dog/puppy/e.png": (11, 11), "dog/puppy/f.PNG": (9, 13)}.items():
        img = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(mx.image.imencode(img, rel[-4:].lower()))
        images[rel] = img
    (root / "cat" / "notes.txt").write_text("not an image")
    return root, images


def read_lst(path):
    return [line.split("\t") for line in open(path).read().splitlines()]


def test_list_gives_each_folder_a_label_and_shuffles_reproducibly(folder, tmp_path, capsys):
    root, images = folder
    assert main(["im2rec", str(tmp_path / "p"), str(root), "--list", "--recursive"]) == 0
    out = capsys.readouterr().out
    assert "cat 0\ndog 1\ndog/puppy 2\n" in out
    rows = read_lst(tmp_path / "p.lst")
    assert sorted(r[2] for r in rows) == sorted(images)
    assert {r[2]: r[1] for r in rows} == {rel: "%f" % ["cat", "dog", "dog/puppy"].index(os.path.dirname(rel))
                                          for rel in images}
    assert [r[2] for r in rows] != sorted(images)       # shuffled ...
    main(["im2rec", str(tmp_path / "q"), str(root), "--list", "--recursive"])
    assert read_lst(tmp_path / "q.lst") == rows          # ... the same way every time
    main(["im2rec", str(tmp_path / "n"), str(root), "--list", "--recursive", "--no-shuffle"])
    assert [r[2] for r in read_lst(tmp_path / "n.lst")] == sorted(images, key=lambda p: (os.path.dirname(p), p.lower()))


def test_pack_resizes_the_short_edge_and_stores_labels_and_ids(folder, tmp_path):
    root, images = folder
    main(["im2rec", str(tmp_path / "p"), str(root), "--list", "--recursive"])
    assert main(["im2rec", str(tmp_path / "p"), str(root), "--resize", "6", "--encoding", ".png",
                 "--num-thread", "3"]) == 0
    rows = {int(r[0]): r for r in read_lst(tmp_path / "p.lst")}
    ds = mx.gluon.data.vision.ImageRecordDataset(str(tmp_path / "p.rec"))
    rec = mx.recordio.MXIndexedRecordIO(str(tmp_path / "p.idx"), str(tmp_path / "p.rec"), "r")
    assert len(ds) == len(images)
    for i, key in enumerate(rec.keys):
        header, _ = mx.recordio.unpack(rec.read_idx(key))
        img, label = ds[i]
        src = images[rows[key][2]]
        if rows[key][2].endswith(".jpg"):
            src = mx.image.imdecode(mx.image.imencode(src, ".jpg")).asnumpy()   # what the JPEG file holds
        h, w = src.shape[:2]
        want = resize_bilinear(src, 6, h * 6 // w) if h > w else resize_bilinear(src, w * 6 // h, 6)
        assert header.id == key and label == float(rows[key][1])
        np.testing.assert_array_equal(img.asnumpy(), want)


def test_thread_count_does_not_change_the_file(folder, tmp_path):
    root, _ = folder
    main(["im2rec", str(tmp_path / "p"), str(root), "--list", "--recursive"])
    main(["im2rec", str(tmp_path / "p.lst"), str(root), "--quality", "80"])
    one = (tmp_path / "p.rec").read_bytes()
    main(["im2rec", str(tmp_path / "p.lst"), str(root), "--quality", "80", "--num-thread", "4"])
    assert (tmp_path / "p.rec").read_bytes() == one


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["im2rec", str(tmp_path / "p"), str(tmp_path / "missing")]) == 1
    assert "image folder" in capsys.readouterr().err
    assert main(["im2rec", str(tmp_path / "p"), str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("graphc: error: im2rec: no .lst file matches") and err.count("\n") == 1


@pytest.mark.skipif(not os.path.exists(IM2REC), reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not built")
def test_list_and_pass_through_rec_equal_mxnets_tool_byte_for_byte(folder, tmp_path):
    root, _ = folder
    # MXNet's script imports cv2 at the top but uses it only to re-encode, which neither mode does
    (tmp_path / "stub").mkdir()
    (tmp_path / "stub" / "cv2.py").write_text("")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "stub"))
    for args in (["--list", "--recursive"], ["--pass-through"]):
        subprocess.run([MXNET_PY, IM2REC, str(tmp_path / "m"), str(root)] + args, env=env, check=True,
                       timeout=120, capture_output=True)
        assert main(["im2rec", str(tmp_path / "g"), str(root)] + args) == 0
        if args[0] == "--list":
            assert (tmp_path / "g.lst").read_bytes() == (tmp_path / "m.lst").read_bytes()
            (tmp_path / "g.lst").write_bytes((tmp_path / "m.lst").read_bytes())
    assert (tmp_path / "g.rec").read_bytes() == (tmp_path / "m.rec").read_bytes()
    assert (tmp_path / "g.idx").read_bytes() == (tmp_path / "m.idx").read_bytes()


def test_ratios_chunks_center_crop_and_packed_labels(folder, tmp_path):
    root, images = folder
    main(["im2rec", str(tmp_path / "s"), str(root), "--list", "--recursive", "--train-ratio", "0.5",
          "--test-ratio", "0.25"])
    parts = {name: read_lst(tmp_path / f"s_{name}.lst") for name in ("train", "val", "test")}
    assert [len(parts[n]) for n in ("train", "val", "test")] == [3, 2, 1]
    assert sorted(r[2] for rows in parts.values() for r in rows) == sorted(images)
    main(["im2rec", str(tmp_path / "c"), str(root), "--list", "--recursive", "--chunks", "2"])
    assert [len(read_lst(tmp_path / f"c_{i}.lst")) for i in range(2)] == [3, 3]

    (tmp_path / "two.lst").write_text("7\t1.5\t2.5\tcat/a.png\nbroken line\n")
    assert main(["im2rec", str(tmp_path / "two.lst"), str(root), "--center-crop", "--pack-label",
                 "--encoding", ".png"]) == 0
    reader = mx.recordio.MXRecordIO(str(tmp_path / "two.rec"), "r")
    header, img = mx.recordio.unpack_img(reader.read(), iscolor=1)
    assert reader.read() is None                     # the broken .lst line was skipped
    assert header.id == 7 and header.flag == 2
    np.testing.assert_array_equal(header.label, [1.5, 2.5])
    np.testing.assert_array_equal(img[:, :, ::-1], images["cat/a.png"][:, 2:12])   # 10x14 -> centre 10x10
