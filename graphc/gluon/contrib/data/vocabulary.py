"""The token counting and indexing that MXNet's WikiText datasets take from mxnet.contrib.text:
index 0 is the unknown token, then the reserved tokens in the order given, then the counted
tokens by decreasing frequency, ties in string order. Enough for the datasets and for a user
who passes `dataset.vocabulary` on to the next split; not the whole of contrib.text."""
from __future__ import annotations

import collections
import re

__all__ = ["count_tokens_from_str", "Vocabulary"]


def count_tokens_from_str(source_str, token_delim=" ", seq_delim="\n", to_lower=False, counter_to_update=None):
    """Counter of the non-empty tokens of source_str split at token_delim or seq_delim (regular
    expressions), lower-cased when asked; added to counter_to_update when given."""
    tokens = [t for t in re.split(token_delim + "|" + seq_delim, source_str) if t]
    if to_lower:
        tokens = [t.lower() for t in tokens]
    if counter_to_update is None:
        return collections.Counter(tokens)
    counter_to_update.update(tokens)
    return counter_to_update


class Vocabulary:
    """Token <-> index maps built from a Counter (see the module docstring). most_freq_count
    caps the counted tokens kept; tokens seen fewer than min_freq times are left out."""

    def __init__(self, counter=None, most_freq_count=None, min_freq=1, unknown_token="<unk>", reserved_tokens=None):
        if min_freq <= 0:
            raise ValueError("`min_freq` must be set to a positive value.")
        reserved = list(reserved_tokens) if reserved_tokens is not None else None
        if reserved is not None:
            if unknown_token in reserved:
                raise ValueError("`reserved_token` cannot contain `unknown_token`.")
            if len(set(reserved)) != len(reserved):
                raise ValueError("`reserved_tokens` cannot contain duplicate reserved tokens.")
        self._unknown_token = unknown_token
        self._reserved_tokens = reserved
        self._idx_to_token = [unknown_token] + (reserved or [])
        self._token_to_idx = {t: i for i, t in enumerate(self._idx_to_token)}
        if counter is not None:
            self._index_counts(counter, most_freq_count, min_freq)

    def _index_counts(self, counter, most_freq_count, min_freq):
        ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
        cap = len(self._idx_to_token) + (len(counter) if most_freq_count is None else most_freq_count)
        for token, freq in ranked:
            if freq < min_freq or len(self._idx_to_token) == cap:
                break
            if token not in self._token_to_idx:
                self._token_to_idx[token] = len(self._idx_to_token)
                self._idx_to_token.append(token)

    def __len__(self):
        return len(self._idx_to_token)

    @property
    def token_to_idx(self):
        return self._token_to_idx

    @property
    def idx_to_token(self):
        return self._idx_to_token

    @property
    def unknown_token(self):
        return self._unknown_token

    @property
    def reserved_tokens(self):
        return self._reserved_tokens

    def to_indices(self, tokens):
        """Index of a token (0 when unknown), or a list of them for a list of tokens."""
        if not isinstance(tokens, list):
            return self._token_to_idx.get(tokens, 0)
        return [self._token_to_idx.get(t, 0) for t in tokens]

    def to_tokens(self, indices):
        """Token of an index, or a list of them; an index outside the vocabulary is an error."""
        single = not isinstance(indices, list)
        indices = [indices] if single else indices
        for i in indices:
            if not isinstance(i, int) or not 0 <= i < len(self._idx_to_token):
                raise ValueError(f"Token index {i} in the provided `indices` is invalid.")
        tokens = [self._idx_to_token[i] for i in indices]
        return tokens[0] if single else tokens
