"""onnxruntime (CPU execution provider, 2 intra-op threads) on W4's ResNet-18 v1, from an ONNX
file that torch.onnx.export writes from bench's hand-written torch model with the seeded
weights (run in the torch venv: `torch_w.py --export-onnx PATH`)."""
import _common as C  # first: pins thread counts

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

SYSTEM = "onnxruntime"
BENCH = Path(__file__).resolve().parents[1]
MODEL = BENCH / ".work" / "resnet18_v1.onnx"
TORCH_PY = BENCH / ".venvs" / "torch" / "bin" / "python"


# workload -> (ONNX file, torch_w.py flag that writes it)
MODELS = {"W4": (MODEL, "--export-onnx"),
          "W2": (BENCH / ".work" / "mlp_w2.onnx", "--export-onnx-w2"),
          "W8a": (BENCH / ".work" / "encoder_w8a.onnx", "--export-onnx-w8a")}


def export(wl: str = "W4") -> float:
    """Write the workload's ONNX file from the torch venv; returns the torch output's
    fingerprint."""
    if not TORCH_PY.exists():
        raise RuntimeError(f"the ONNX export needs the torch venv ({TORCH_PY} missing)")
    path, flag = MODELS[wl]
    path.parent.mkdir(parents=True, exist_ok=True)
    p = subprocess.run([str(TORCH_PY), str(Path(__file__).with_name("torch_w.py")),
                        flag, str(path)], capture_output=True, text=True, timeout=600)
    got = [ln for ln in p.stdout.splitlines() if ln.startswith(C.PREFIX)]
    if p.returncode != 0 or not got:
        tail = " | ".join(p.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"torch.onnx.export failed (exit {p.returncode}): {tail}"[:500])
    return json.loads(got[-1][len(C.PREFIX):])["check"]


def session(path=MODEL):
    so = ort.SessionOptions()
    so.intra_op_num_threads = C.THREADS
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def w4(quick):
    def body():
        torch_check = export()
        x = C.w4_input()
        t0 = time.perf_counter()
        sess = session()
        name = sess.get_inputs()[0].name
        out = sess.run(None, {name: x})[0]
        setup = time.perf_counter() - t0
        warm, reps = C.reps("W4", quick)
        samples = C.time_blocks(lambda: sess.run(None, {name: x}), C.W4_BLOCK, warm, reps)
        return C.record(SYSTEM, "CPU EP", "W4", samples, check=C.check_weighted(out),
                        argmax=int(np.argmax(out)), setup_s=setup, weights="seeded",
                        torch_check=torch_check, ort_version=ort.__version__)
    return body


def w2(quick):
    def body():
        torch_check = export("W2")
        x = C.mlp_inputs(1)[0]
        t0 = time.perf_counter()
        sess = session(MODELS["W2"][0])
        name = sess.get_inputs()[0].name
        out = sess.run(None, {name: x})[0]
        setup = time.perf_counter() - t0
        warm, reps = C.reps("W2", quick)
        samples = C.time_blocks(lambda: sess.run(None, {name: x}), C.W2_BLOCK, warm, reps)
        return C.record(SYSTEM, "CPU EP", "W2", samples, check=C.check_value(out),
                        setup_s=setup, torch_check=torch_check, ort_version=ort.__version__)
    return body


def w8a(quick):
    def body():
        import _w7_9 as W
        torch_check = export("W8a")
        x = W.w8a_input()
        t0 = time.perf_counter()
        sess = session(MODELS["W8a"][0])
        name = sess.get_inputs()[0].name
        out = sess.run(None, {name: x})[0]
        setup = time.perf_counter() - t0
        warm, reps = W.reps("W8a", quick)
        samples = C.time_blocks(lambda: sess.run(None, {name: x}), W.W8A_BLOCK, warm, reps)
        return W.record(SYSTEM, "CPU EP", "W8a", samples, check=C.check_weighted(out),
                        setup_s=setup, weights="seeded", torch_check=torch_check,
                        ort_version=ort.__version__)
    return body


def w6_child(variant):
    def body():
        import_s = time.perf_counter() - C.T_START
        x = C.w4_input()
        t0 = time.perf_counter()
        sess = session()
        y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        first = time.perf_counter() - t0
        return {"system": SYSTEM, "variant": variant, "workload": "W6", "first_call_s": first,
                "import_s": import_s, "build_s": 0.0, "check": C.check_weighted(y)}
    return body


def main():
    a = C.parse_args()
    bodies = {"W2": w2, "W4": w4, "W8a": w8a}
    if a.workload in bodies and C.wanted(a, "CPU EP"):
        C.run_variant(SYSTEM, "CPU EP", a.workload, bodies[a.workload](a.quick))
    elif a.workload == "W6":
        if a.child:
            C.run_variant(SYSTEM, a.variants, "W6", w6_child(a.variants))
            return
        try:
            export()
        except Exception as e:  # noqa: BLE001
            C.emit({"system": SYSTEM, "variant": "session", "workload": "W6",
                    "error": f"{type(e).__name__}: {e}"[:500]})
            return
        _, n = C.reps("W6", a.quick)
        runs, errors = C.w6_children(__file__, [("session", {})] * n, a.quick)
        C.w6_emit(SYSTEM, runs, errors, ["session"],
                  note="InferenceSession (graph optimisation) + first run; the ONNX file is "
                       "exported beforehand")


if __name__ == "__main__":
    sys.exit(main())
