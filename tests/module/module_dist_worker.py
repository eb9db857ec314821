"""One rank of test_module_dist.py: Module.fit with kvstore='dist_sync' on this rank's half of
every batch of 12 (rows r*6..r*6+5 of each), then the parameters go to OUT/rank<r>.npz."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import graphc as mx  # noqa: E402
from module_scenarios import dataset, mlp, mlp_params  # noqa: E402


def main(out):
    kv = mx.kv.create("dist_sync")
    X, Y = dataset(n=36)
    mine = np.concatenate([np.arange(b * 12 + kv.rank * 6, b * 12 + kv.rank * 6 + 6) for b in range(3)])
    mod = mx.mod.Module(mlp(mx))
    mod.fit(mx.io.NDArrayIter(X[mine], Y[mine], batch_size=6), num_epoch=2, kvstore=kv, arg_params=mlp_params(mx),
            optimizer="sgd", optimizer_params={"learning_rate": 0.3, "momentum": 0.9})
    arg, _ = mod.get_params()
    np.savez(os.path.join(out, f"rank{kv.rank}.npz"), **{k: v.asnumpy() for k, v in arg.items()})


if __name__ == "__main__":
    main(sys.argv[1])
