"""pytest plugin for the lent-GPU run (`pytest -p real_gpu_only`, bench/gpu on PYTHONPATH): keep
only the tests that touch the real GPU, those using the `cuda_device` fixture (tests/conftest.py
gives them the hardware driver under GRAPHC_TEST_REAL_GPU=1) or marked `gpu`. The rest of the
GPU suites (their own simulator fixtures, nvcc-only compile checks) already ran on a machine
without a GPU; on the lease they would only spend its minutes."""
from __future__ import annotations


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        uses_gpu = ("cuda_device" in getattr(item, "fixturenames", ())
                    or item.get_closest_marker("gpu") is not None)
        (keep if uses_gpu else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
