"""pipeline_schedule.replay: the wall a run's tasks would take on free cores, from their
durations, scheduled as run() schedules them; and the CPU time run() records per task."""
import time

import pytest

from graphc.pipeline_schedule import build_tasks, replay, run


class _Step:
    def __init__(self, label, device, reads, makes):
        self.label, self.device, self.reads, self.makes = label, device, reads, makes


def _forward():
    """Two stages: cpu(0) makes h from x, a copy hands it over, cpu(1) makes y."""
    return [_Step("f0", 0, ["x"], ["h"]), _Step("f1", 1, ["h"], ["y"])]


def test_replay_of_a_two_stage_pipeline_is_the_gpipe_wall():
    timeline = run(build_tasks([_forward()] * 4, lambda s, m: s.device), lambda t: None, parallel=False)
    one = {t: 1.0 for t in timeline.tasks}
    assert replay(timeline, one) == pytest.approx(5.0)          # M + stages - 1
    slow_second = {t: (2.0 if t.label == "f1" else 1.0) for t in timeline.tasks}
    assert replay(timeline, slow_second) == pytest.approx(1.0 + 4 * 2.0)


def test_replay_runs_what_another_device_waits_for_first():
    """cpu(1) runs the input gradients b1 (cpu(0)'s b0 waits for them) before its weight
    gradients w1: with b0 of 3 s the wall is cpu(0)'s, 1 s for the first b1 then 3 x 3 s."""
    steps = [_Step("b1", 1, ["head"], ["d1"]), _Step("w1", 1, ["head", "d1"], ["g1"]),
             _Step("b0", 0, ["d1"], ["g0"])]
    timeline = run(build_tasks([steps] * 3, lambda s, m: s.device), lambda t: None, parallel=False)
    cost = {"b1": 1.0, "w1": 2.0, "b0": 3.0}
    assert replay(timeline, {t: cost[t.label] for t in timeline.tasks}) == pytest.approx(10.0)
    assert replay(timeline, {t: 1.0 for t in timeline.tasks}) == pytest.approx(6.0)


def test_run_records_each_task_s_cpu_time_which_sleeping_does_not_use():
    def execute(task):
        if task.label == "f0":
            t = time.thread_time()
            while time.thread_time() - t < 0.02:
                pass
        else:
            time.sleep(0.05)
    timeline = run(build_tasks([_forward()] * 2, lambda s, m: s.device), execute, parallel=True)
    assert set(timeline.cpu) == set(timeline.tasks)
    for task, cpu in timeline.cpu.items():
        assert (cpu >= 0.02) if task.label == "f0" else (cpu < 0.02)
    assert timeline.busy_cpu() == pytest.approx(sum(timeline.cpu.values()))
    assert replay(timeline) < timeline.wall
