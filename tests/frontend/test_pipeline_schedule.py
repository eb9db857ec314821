"""graphc/pipeline_schedule.py on made-up steps: how a batch splits, which task a device runs
next, that a failing task stops every device with its own error, and the bubble arithmetic."""
import threading
import time

import pytest

from graphc.ops.errors import GraphcError
from graphc.pipeline_schedule import Timeline, bubble_fraction, build_tasks, run, split_batch


class _Step:
    def __init__(self, label, device, reads, makes):
        self.label, self.device, self.reads, self.makes = label, device, reads, makes


def _two_stage_backward():
    """cpu(1)'s input gradient 'b1' (read by cpu(0)'s 'b0') and its weight gradient 'w1'."""
    return [_Step("b1", 1, ["head"], ["d1"]), _Step("w1", 1, ["head", "d1"], ["g1"]),
            _Step("b0", 0, ["d1"], ["g0"])]


def test_split_batch_sizes_differ_by_at_most_one_larger_first():
    assert split_batch(10, 4) == [(0, 3), (3, 6), (6, 8), (8, 10)]
    assert split_batch(8, 2) == [(0, 4), (4, 8)]
    assert split_batch(5, 1) == [(0, 5)]


@pytest.mark.parametrize("bad, message", [(6, "more than the batch size 5"), (0, "positive integer"),
                                          (2.0, "positive integer"), (True, "positive integer")])
def test_split_batch_refuses_bad_counts_naming_the_block(bad, message):
    with pytest.raises(GraphcError, match=f"net0: pipeline_microbatches.*{message}"):
        split_batch(5, bad, "net0")


def test_a_device_runs_what_another_device_waits_for_first_then_the_lowest_micro_batch():
    steps = _two_stage_backward()
    tasks = build_tasks([steps] * 3, lambda step, maker: step.device)
    ran = []
    run(tasks, lambda t: ran.append((t.label, t.micro)), parallel=False)
    on_1 = [r for r in ran if r[0] != "b0"]
    assert on_1 == [("b1", 0), ("b1", 1), ("b1", 2), ("w1", 0), ("w1", 1), ("w1", 2)]
    # every task after what it reads, and a step's micro-batches in order
    for label, m in ran:
        if label == "b0":
            assert ran.index(("b1", m)) < ran.index(("b0", m))
    assert [m for label, m in ran if label == "b0"] == [0, 1, 2]


def test_devices_run_at_the_same_time_on_their_own_threads():
    steps = [_Step("a", 0, ["x"], ["y"]), _Step("b", 1, ["x"], ["z"])]
    tasks = build_tasks([steps], lambda step, maker: step.device)
    both = threading.Barrier(2, timeout=10)      # passes only when both devices' tasks run at once
    threads = {}

    def execute(task):
        threads[task.device] = threading.get_ident()
        both.wait()
    timeline = run(tasks, execute, parallel=True)
    assert threads[0] != threads[1] and len(timeline.events) == 2


def test_a_failing_task_stops_every_device_and_raises_its_own_error():
    steps = _two_stage_backward()
    tasks = build_tasks([steps] * 2, lambda step, maker: step.device)

    def execute(task):
        if task.label == "b1" and task.micro == 1:
            raise ValueError("stage b1 failed on micro-batch 1")
        time.sleep(0.001)
    with pytest.raises(ValueError, match="stage b1 failed on micro-batch 1"):
        run(tasks, execute, parallel=True)


def test_micro_batches_must_run_the_same_stages():
    a = _two_stage_backward()
    with pytest.raises(GraphcError, match="micro-batch 1's program has steps"):
        build_tasks([a, a[:2]], lambda step, maker: step.device)


def test_bubble_fraction_is_idle_device_time_over_devices_times_wall():
    tl = Timeline()
    tl.start, tl.end = 0.0, 5.0
    tl.events = [(0, "f0", m, m, m + 1.0) for m in range(4)] + [(1, "f1", m, m + 1.0, m + 2.0) for m in range(4)]
    assert tl.bubble_fraction() == pytest.approx(1 - 8 / 10)
    other = Timeline()
    other.start, other.end = 10.0, 12.0
    other.events = [(0, "b0", 0, 10.0, 12.0), (1, "b1", 0, 10.0, 11.0)]
    assert bubble_fraction([tl, other]) == pytest.approx(1 - 11 / 14)
