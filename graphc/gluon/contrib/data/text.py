"""WikiText-2 and WikiText-103 (Merity et al. 2016) as language-model datasets, as MXNet 1.9's
gluon.contrib.data.text gives them: item i is (data, label), two int32 rows of seq_len token
indices, label being data shifted by one token; every line ends with '<eos>'; the vocabulary is
built from the split read (or given, to index another split the same way).

graphc never downloads: the `wiki.<segment>.tokens` file must already be in `root` (unzip
MXNet's archive, named below, there). A missing file is an error that says where it was looked
for and what to put there. The file is read as found (MXNet would check its SHA-1 and fetch a
fresh copy on a mismatch)."""
from __future__ import annotations

import os

import numpy as np

from ...data.dataset import Dataset
from .vocabulary import Vocabulary, count_tokens_from_str

__all__ = ["WikiText2", "WikiText103"]

EOS_TOKEN = "<eos>"
_SEGMENTS = {"train": "wiki.train.tokens", "validation": "wiki.valid.tokens", "test": "wiki.test.tokens"}


def _default_root(name):
    from ....base import data_dir
    return os.path.join(data_dir(), "datasets", name)


class _WikiText(Dataset):
    _name = ""
    _archive = ""

    def __init__(self, root, segment, vocab, seq_len):
        if segment not in _SEGMENTS:
            raise ValueError(f"{type(self).__name__}: segment must be one of {sorted(_SEGMENTS)}, got {segment!r}")
        self._root = os.path.expanduser(root)
        self._segment = segment
        self._seq_len = int(seq_len)
        self._vocab = vocab
        self._counter = None
        self._data, self._label = self._load(os.path.join(self._root, _SEGMENTS[segment]))

    @property
    def vocabulary(self):
        return self._vocab

    @property
    def frequencies(self):
        """Counter of the tokens of the file read (None when a vocabulary was given)."""
        return self._counter

    def _load(self, path):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{type(self).__name__}: {path} not found. graphc does not download data sets: unzip "
                f"{self._archive} (MXNet's gluon/dataset/{self._name} archive, or the original from the WikiText "
                f"authors) so that {_SEGMENTS[self._segment]} is in {self._root}, or pass root=")
        with open(path, encoding="utf8") as f:
            content = f.read()
        if self._vocab is None:
            self._counter = count_tokens_from_str(content)
            self._vocab = Vocabulary(counter=self._counter, reserved_tokens=[EOS_TOKEN])
        tokens = [t for line in content.splitlines() for t in line.strip().split() + [EOS_TOKEN]
                  if line.strip()]
        ids = np.asarray(self._vocab.to_indices(tokens), dtype=np.int32)
        data, label = ids[:-1], ids[1:]
        usable = len(data) // self._seq_len * self._seq_len
        from .... import ndarray as nd
        return (nd.array(data[:usable].reshape(-1, self._seq_len), dtype=np.int32),
                nd.array(label[:usable].reshape(-1, self._seq_len), dtype=np.int32))

    def __getitem__(self, idx):
        return self._data[idx], self._label[idx]

    def __len__(self):
        return len(self._label)


class WikiText2(_WikiText):
    """WikiText-2 (2M training tokens); files from wikitext-2-v1.zip."""
    _name, _archive = "wikitext-2", "wikitext-2-v1.zip"

    def __init__(self, root=None, segment="train", vocab=None, seq_len=35):
        super().__init__(root if root is not None else _default_root(self._name), segment, vocab, seq_len)


class WikiText103(_WikiText):
    """WikiText-103 (103M training tokens); files from wikitext-103-v1.zip."""
    _name, _archive = "wikitext-103", "wikitext-103-v1.zip"

    def __init__(self, root=None, segment="train", vocab=None, seq_len=35):
        super().__init__(root if root is not None else _default_root(self._name), segment, vocab, seq_len)
