"""Writes the MXNet 1.9.1 sparse .params fixtures of test_sparse_params.py. Run it with MXNet's
python (bench/.venvs/mxnet/bin/python make_fixtures.py) in this folder."""
import mxnet as mx
import numpy as np

nd = mx.nd
r = nd.sparse.row_sparse_array((np.array([[1, 2], [3, 4]], 'float32'), np.array([1, 3])), shape=(5, 2))
c = nd.sparse.csr_matrix((np.array([1.5, 2.5, 3.5], 'float64'), np.array([0, 2, 1]), np.array([0, 2, 2, 3])),
                         shape=(3, 4))
nd.save('mxnet_rsp.params', [r])
nd.save('mxnet_mixed.params', {'emb': r, 'x': c, 'dense': nd.array([[1, 2, 3]])})
nd.save('mxnet_empty_rsp.params', {'z': nd.sparse.zeros('row_sparse', (4, 3))})

# a Gluon block whose weight MXNet stores row_sparse (SparseEmbedding): its save_parameters file
emb = mx.gluon.contrib.nn.SparseEmbedding(6, 3, prefix='emb_')
emb.initialize(mx.init.Uniform(1.0))
trainer = mx.gluon.Trainer(emb.collect_params(), 'sgd')     # MXNet reads row_sparse weights through it
emb.save_parameters('mxnet_sparse_embedding.params')
np.save('mxnet_sparse_embedding_weight.npy', emb.weight.row_sparse_data(mx.nd.arange(6)).asnumpy())
