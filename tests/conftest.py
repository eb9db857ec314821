"""Test-wide settings: the verifier runs between passes, and compiled programs are cached in a
per-session temporary directory (never the user's cache). A test that put data on a second
device leaves the process single-device again (graphc.device.release_devices), so that later
tests do not run asynchronously because of test order."""
import os
import tempfile

os.environ.setdefault("GRAPHC_VERIFY", "1")
os.environ.setdefault("GRAPHC_CACHE_DIR", tempfile.mkdtemp(prefix="graphc-test-cache-"))
# the CUDA simulator's compiled kernels, shared by the workers of one run (pytest-xdist names
# the run): g++ is most of a GPU test's time, and the workers compile the same kernels
_run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
if _run:
    os.environ.setdefault("GRAPHC_CUDA_SIM_CACHE", os.path.join(tempfile.gettempdir(), f"graphc-test-sim-{_run}"))
# the MPI tests run every rank on this host: shared memory only for MPICH's UCX netmod, whose
# address exchange over a network transport occasionally fails MPI_Init (pmodels/mpich#7417)
os.environ.setdefault("UCX_TLS", "self,sm")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=40, deadline=None)
settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _single_device_after_each_test():
    yield
    from graphc import device
    if device.MULTI:
        device.release_devices()


@pytest.fixture
def cuda_device(monkeypatch):
    """The CUDA driver a GPU test runs on: the host simulator (GRAPHC_CUDA_SIM, needs g++) on
    machines without a GPU, the real GPU where GRAPHC_TEST_REAL_GPU=1 (the lent-GPU run sets it,
    so every simulator test also runs on the hardware). Each test starts with a fresh driver."""
    import shutil
    from graphc.runtime.cuda import driver
    if os.environ.get("GRAPHC_TEST_REAL_GPU") == "1":
        monkeypatch.delenv("GRAPHC_CUDA_SIM", raising=False)
    else:
        if shutil.which("g++") is None:
            pytest.skip("the CUDA simulator compiles kernels with g++, which is not installed")
        monkeypatch.setenv("GRAPHC_CUDA_SIM", "1")
    driver.reset_driver()
    d = driver.get_driver()
    if d is None:
        pytest.skip("no CUDA GPU (GRAPHC_TEST_REAL_GPU=1 but no driver sees one)")
    _forget_gpu_programs()
    yield d
    from graphc import device
    if device.MULTI:
        device.release_devices()
    _forget_gpu_programs()       # (they hold device memory of this test's driver)
    driver.reset_driver()


def _forget_gpu_programs():
    import sys
    program, eager = sys.modules.get("graphc.runtime.cuda.program"), sys.modules.get("graphc.ndarray.gpu_ops")
    if program is not None:
        program.clear_program_cache()
    if eager is not None:
        eager.clear()


@pytest.fixture
def two_gpus(cuda_device, monkeypatch):
    """Two GPUs: two simulated ones, or the machine's own under GRAPHC_TEST_REAL_GPU=1 (skips
    where it has fewer)."""
    from graphc.runtime.cuda import driver
    if os.environ.get("GRAPHC_TEST_REAL_GPU") != "1":
        monkeypatch.setenv("GRAPHC_CUDA_SIM_DEVICES", "2")
        driver.reset_driver()
    d = driver.get_driver()
    if d.device_count() < 2:
        pytest.skip("needs two GPUs")
    yield d


@pytest.fixture
def host_traffic(monkeypatch):
    """count(driver) -> a dict of the bytes that driver moves from then on: host to device
    ('htod'), device to host ('dtoh'), GPU to GPU ('peer'). For the tests that a GPU path keeps
    its data on the device."""
    def count(d):
        moved = {"htod": 0, "dtoh": 0, "peer": 0}
        up, down, peer = d.memcpy_htod, d.memcpy_dtoh, getattr(d, "memcpy_peer", None)

        def htod(device, dst, src):
            moved["htod"] += src.nbytes
            return up(device, dst, src)

        def dtoh(device, dst, src):
            moved["dtoh"] += dst.nbytes
            return down(device, dst, src)

        def memcpy_peer(dst_device, dst, src_device, src, nbytes):
            moved["peer"] += nbytes
            return peer(dst_device, dst, src_device, src, nbytes)
        monkeypatch.setattr(d, "memcpy_htod", htod)
        monkeypatch.setattr(d, "memcpy_dtoh", dtoh)
        if peer is not None:
            monkeypatch.setattr(d, "memcpy_peer", memcpy_peer)
        return moved
    return count
