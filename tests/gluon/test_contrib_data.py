"""gluon.contrib.data against Apache MXNet 1.9.1 (recorded answers, live where MXNet's venv
exists; cases in gluon_contrib_cases.py: IntervalSampler orders, WikiText2 read from a small
local file with its vocabulary), and what graphc does differently on purpose: no downloads
(a clear error instead), an honest len() for IntervalSampler without rollover."""
import numpy as np
import pytest

import graphc as mx
from graphc.gluon.contrib import data as cdata
from graphc.gluon.contrib.data.vocabulary import Vocabulary, count_tokens_from_str

import gluon_contrib_cases as cases

SECTION = "data"


@pytest.mark.parametrize("mode,case", cases.recorded_cases(SECTION))
def test_graphc_matches_recorded_mxnet(mode, case):
    cases.assert_same(f"{mode}.{case}", cases.graphc_answers(SECTION, mode)[case], cases.recorded(SECTION)[mode][case])


@pytest.mark.skipif(not cases.HAVE_MXNET, reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not installed")
def test_live_mxnet_gives_the_recorded_answers():
    live = cases.live_mxnet(SECTION)
    for mode in cases.MODES:
        cases.assert_same(mode, cases.recorded(SECTION)[mode], live[mode])


def test_interval_sampler_length_is_what_it_yields():
    for n, interval, rollover in ((10, 3, True), (10, 3, False), (9, 9, False), (1, 1, True)):
        sampler = cdata.IntervalSampler(n, interval, rollover=rollover)
        assert len(sampler) == len(list(sampler))
    assert sorted(cdata.IntervalSampler(11, 4)) == list(range(11))
    with pytest.raises(ValueError, match="Interval 5 must be smaller than or equal to length 4"):
        cdata.IntervalSampler(4, 5)


def test_interval_sampler_drives_a_dataloader():
    data = mx.gluon.data.ArrayDataset(np.arange(6, dtype=np.float32))
    loader = mx.gluon.data.DataLoader(data, batch_size=2, sampler=cdata.IntervalSampler(6, 2))
    assert [b.asnumpy().tolist() for b in loader] == [[0, 2], [4, 1], [3, 5]]


@pytest.mark.parametrize("cls,archive", [(cdata.text.WikiText2, "wikitext-2-v1.zip"),
                                         (cdata.text.WikiText103, "wikitext-103-v1.zip")])
def test_wikitext_without_its_file_says_what_to_put_where(tmp_path, cls, archive):
    with pytest.raises(FileNotFoundError) as err:
        cls(root=str(tmp_path), segment="test")
    message = str(err.value)
    assert str(tmp_path / "wiki.test.tokens") in message and archive in message and "does not download" in message
    with pytest.raises(ValueError, match="segment must be one of"):
        cls(root=str(tmp_path), segment="dev")


def test_wikitext_items_are_shifted_token_rows(tmp_path):
    (tmp_path / "wiki.train.tokens").write_text(" a b a \n\n c a \n", encoding="utf8")
    ds = cdata.text.WikiText2(root=str(tmp_path), seq_len=2)
    vocab = ds.vocabulary
    assert vocab.idx_to_token == ["<unk>", "<eos>", "a", "b", "c"]
    stream = [2, 3, 2, 1, 4, 2, 1]                 # a b a <eos> c a <eos>
    assert len(ds) == 3
    for i in range(3):
        data, label = ds[i]
        assert data.asnumpy().tolist() == stream[2 * i:2 * i + 2]
        assert label.asnumpy().tolist() == stream[2 * i + 1:2 * i + 3]
    assert ds.frequencies == {"a": 3, "b": 1, "c": 1}


def test_vocabulary_caps_and_thresholds_like_mxnet_contrib_text():
    counter = count_tokens_from_str("b b c a a d\ne e e", to_lower=False)
    vocab = Vocabulary(counter, most_freq_count=3, min_freq=2, reserved_tokens=["<pad>"])
    assert vocab.idx_to_token == ["<unk>", "<pad>", "e", "a", "b"]
    assert vocab.to_indices(["a", "zzz"]) == [3, 0] and vocab.to_indices("e") == 2
    assert vocab.to_tokens([4, 1]) == ["b", "<pad>"]
    with pytest.raises(ValueError, match="Token index 9"):
        vocab.to_tokens(9)
    with pytest.raises(ValueError, match="cannot contain `unknown_token`"):
        Vocabulary(counter, reserved_tokens=["<unk>"])
