"""DataLoader under faults: workers that die, crash or hang, loaders dropped mid-pass, many of them
in a row. Each scenario runs in its own process (dataloader_faults_child.py) under a timeout, so
a loader that blocks fails its test instead of stalling the suite."""
import json
import os
import signal
import subprocess
import sys

import pytest

CHILD = os.path.join(os.path.dirname(__file__), "dataloader_faults_child.py")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds in /proc")


def _run(scenario, thread=False, timeout=40):
    args = [sys.executable, CHILD, scenario] + (["thread"] if thread else [])
    # its own session, so that a hung scenario's workers can be killed with it
    child = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        out, err = child.communicate()
        pytest.fail(f"scenario {scenario!r} (thread_pool={thread}) hung for {timeout} s:\n{err[-3000:]}")
    assert child.returncode == 0, f"scenario {scenario!r} failed:\n{err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("thread", [False, True], ids=["processes", "threads"])
def test_ten_rounds_of_an_eight_worker_loader_dropped_mid_pass_take_seconds_not_forever(thread):
    facts = _run("rounds", thread)
    assert facts["elapsed"] < 10, facts
    assert facts["slowest_delete"] < 1.0, facts     # dropping a loader never waits on its workers


@pytest.mark.parametrize("thread", [False, True], ids=["processes", "threads"])
def test_twenty_rounds_leak_no_process_thread_or_file_descriptor(thread):
    facts = _run("rounds20", thread)
    assert facts["after"]["children"] == 0, facts
    assert facts["after"]["fds"] == facts["before"]["fds"], facts
    assert facts["after"]["threads"] == facts["before"]["threads"], facts


def test_a_worker_killed_with_sigkill_is_named_within_two_seconds():
    facts = _run("sigkill")
    assert facts["type"] == "DataLoaderWorkerError", facts
    assert facts["seconds"] < 2.0, facts
    assert f"DataLoader worker 2 (pid {facts['pid']}) exited unexpectedly with signal SIGKILL" in facts["message"]
    assert "while loading samples [" in facts["message"]
    # the pass stays failed; the loader's next pass gets fresh workers and works
    assert facts["again"] == facts["message"]
    assert facts["fresh"] == [0.0, 4.0]
    assert facts["after"]["children"] == 0 and facts["after"]["fds"] == facts["before"]["fds"], facts


def test_a_worker_that_exits_inside_the_dataset_is_named_with_its_exit_code():
    facts = _run("os_exit")
    assert facts["type"] == "DataLoaderWorkerError", facts
    assert facts["seconds"] < 2.0, facts
    assert "exited unexpectedly with exit code 3 while loading samples [8, 9, 10, 11]" in facts["message"]
    assert "(pid " in facts["message"]
    assert facts["after"]["children"] == 0 and facts["after"]["fds"] == facts["before"]["fds"], facts


def test_a_dataset_exception_in_a_worker_process_is_reraised_with_its_traceback():
    facts = _run("raises")
    assert facts["type"] == "ValueError" and facts["message"] == "sample 9 cannot be decoded"
    assert "raised while loading samples [8, 9, 10, 11]" in facts["cause"]
    assert "in __getitem__" in facts["cause"] and 'raise ValueError(f"sample {idx}' in facts["cause"]
    assert facts["first"] == [0.0, 1.0, 2.0, 3.0]
    assert facts["rest"] == [[12.0, 13.0, 14.0, 15.0]]     # the pass goes on past the bad batch
    assert facts["alive_after_delete"] == 0, facts


def test_a_dataset_exception_in_a_worker_thread_is_reraised_with_the_thread_named():
    facts = _run("raises", thread=True)
    assert facts["type"] == "ValueError" and facts["message"] == "sample 9 cannot be decoded"
    assert any("DataLoader worker thread" in n and "[8, 9, 10, 11]" in n for n in facts["notes"]), facts
    assert facts["rest"] == [[12.0, 13.0, 14.0, 15.0]]
    assert facts["alive_after_delete"] == 0, facts


def test_eight_workers_give_the_batches_of_no_workers_in_the_same_order():
    facts = _run("same_as_no_workers")
    assert facts["batches"] == 10 and facts["equal"], facts
    assert sorted(sum(facts["labels"], [])) == list(range(48))


def test_tasks_larger_than_a_pipe_buffer_behind_large_batches_do_not_deadlock():
    assert _run("huge_tasks")["equal"]


@pytest.mark.parametrize("thread", [False, True], ids=["processes", "threads"])
def test_timeout_raises_multiprocessing_timeout_error_as_mxnet_and_the_loader_still_drops_fast(thread):
    facts = _run("timeout", thread)
    assert facts["type"] == "TimeoutError", facts
    assert "timed out after 0.5 seconds" in facts["message"], facts
    assert 0.45 < facts["seconds"] < 3.0, facts
    assert facts["delete_seconds"] < 3.0 and facts["children"] == 0, facts
    if not thread:
        assert "DataLoader worker 0 (pid" in facts["message"]


@pytest.mark.parametrize("thread", [False, True], ids=["processes", "threads"])
def test_dropping_a_loader_whose_workers_are_stuck_in_the_dataset_returns_at_once(thread):
    facts = _run("stuck_delete", thread)
    assert facts["delete_seconds"] < 2.0, facts
    assert facts["children"] == 0, facts


def test_idle_workers_exit_cleanly_on_end_of_input_when_the_loader_goes():
    facts = _run("idle_exit")
    assert facts["exitcodes"] == [0, 0, 0], facts       # not -SIGTERM: nothing kept their input open
    assert facts["delete_seconds"] < 0.4 and facts["second_alive"], facts
