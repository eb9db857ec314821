"""W8a's BERT-base-shaped encoder and W8b's Transformer LM as ordinary Gluon HybridBlocks.

The same source runs on graphc and on MXNet 1.9.1: `blocks(gluon)` takes the framework's
`gluon` module, so the two systems are measured on literally the same model code (the way a
user would port a Gluon model). torch_w7_9.py holds PyTorch's twin, registering parameters in
the same order so the seeded weights of _w7_9.py load by position into all three.
"""
from __future__ import annotations

import math


def blocks(gluon):
    """(EncoderLayer, Encoder, TransformerLM) classes built on `gluon` (graphc's or MXNet's)."""
    nn = gluon.nn

    class SelfAttention(gluon.HybridBlock):
        """Multi-head self-attention: heads folded into the batch for two batch_dots."""

        def __init__(self, units, heads, **kw):
            super().__init__(**kw)
            self._heads = heads
            self._scale = 1.0 / math.sqrt(units // heads)
            with self.name_scope():
                self.query = nn.Dense(units, flatten=False, in_units=units)
                self.key = nn.Dense(units, flatten=False, in_units=units)
                self.value = nn.Dense(units, flatten=False, in_units=units)
                self.proj = nn.Dense(units, flatten=False, in_units=units)

        def hybrid_forward(self, F, x, mask=None):
            def split(t):       # (B, T, D) -> (B*H, T, D/H)
                t = F.transpose(F.reshape(t, shape=(0, 0, self._heads, -1)), axes=(0, 2, 1, 3))
                return F.reshape(t, shape=(-3, 0, 0))
            q = split(self.query(x) * self._scale)
            k, v = split(self.key(x)), split(self.value(x))
            s = F.batch_dot(q, k, transpose_b=True)
            if mask is not None:
                s = F.broadcast_add(s, mask)
            o = F.batch_dot(F.softmax(s, axis=-1), v)                  # (B*H, T, D/H)
            o = F.reshape(o, shape=(-4, -1, self._heads, 0, 0))        # (B, H, T, D/H)
            o = F.reshape(F.transpose(o, axes=(0, 2, 1, 3)), shape=(0, 0, -3))
            return self.proj(o)

    class EncoderLayer(gluon.HybridBlock):
        """BERT's post-LayerNorm layer: LN(x + attn(x)), then LN(h + W2 gelu(W1 h))."""

        def __init__(self, units, heads, ffn, eps, **kw):
            super().__init__(**kw)
            with self.name_scope():
                self.attn = SelfAttention(units, heads)
                self.ln1 = nn.LayerNorm(epsilon=eps, in_channels=units)
                self.ffn1 = nn.Dense(ffn, flatten=False, in_units=units)
                self.act = nn.GELU()
                self.ffn2 = nn.Dense(units, flatten=False, in_units=ffn)
                self.ln2 = nn.LayerNorm(epsilon=eps, in_channels=units)

        def hybrid_forward(self, F, x, mask=None):
            a = self.attn(x) if mask is None else self.attn(x, mask)
            h = self.ln1(x + a)
            return self.ln2(h + self.ffn2(self.act(self.ffn1(h))))

    class Encoder(gluon.HybridBlock):
        def __init__(self, layers, units, heads, ffn, eps, **kw):
            super().__init__(**kw)
            with self.name_scope():
                self.layers = nn.HybridSequential()
                for _ in range(layers):
                    self.layers.add(EncoderLayer(units, heads, ffn, eps))

        def hybrid_forward(self, F, x):
            return self.layers(x)

    class TransformerLM(gluon.HybridBlock):
        """Token + learned positional embedding, causal encoder layers, untied decoder; the
        causal mask is an input (1, T, T) so the block needs no constant op."""

        def __init__(self, layers, units, heads, ffn, vocab, seq, eps, **kw):
            super().__init__(**kw)
            with self.name_scope():
                self.pos_weight = self.params.get("pos_weight", shape=(seq, units))
                self.embed = nn.Embedding(vocab, units)
                self.layers = [EncoderLayer(units, heads, ffn, eps) for _ in range(layers)]
                for i, blk in enumerate(self.layers):
                    self.register_child(blk, f"layer{i}")
                self.decoder = nn.Dense(vocab, flatten=False, in_units=units)

        def hybrid_forward(self, F, tokens, mask, pos_weight):
            h = F.broadcast_add(self.embed(tokens), F.expand_dims(pos_weight, axis=0))
            for blk in self.layers:
                h = blk(h, mask)
            return self.decoder(h)

    return EncoderLayer, Encoder, TransformerLM


def load_flat(net, arrays, nd, what):
    """Set `arrays` into net.collect_params() by position, refusing a count or shape mismatch."""
    params = list(net.collect_params().values())
    if len(params) != len(arrays):
        raise ValueError(f"{what}: {len(params)} parameters in the model, {len(arrays)} seeded")
    for i, (p, a) in enumerate(zip(params, arrays)):
        if tuple(p.shape) != a.shape:
            raise ValueError(f"{what}: parameter {i} {p.name} has shape {tuple(p.shape)}, "
                             f"seeded {a.shape}")
        p.set_data(nd.array(a))
