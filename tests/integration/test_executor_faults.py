"""kill -9 one of three executor workers mid-batch: every job is answered exactly once.

Three real executor processes (backend `process`, for speed) share the JetStream work
queue on the session's nats-server. The test plays the orchestrator: it publishes a batch
of ExecuteRequests the way `Orchestrator.dispatch_problem` does and takes the answers
from `ucoder.results.executor`. Once answers flow, a worker that is running candidates is
SIGKILLed with its sandboxes; its unacked jobs must be redelivered to the survivors after
`ack_wait_s` and answered once, with nothing lost and nothing duplicated.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client.parser import text_string_to_metric_families

from services.executor.app import Executor, ExecutorConfig
from services.executor.harness import canonical_digest
from tests.conftest import NatsServer
from ucoder_common import subjects
from ucoder_common.bus import BACKLOG_POLL_S, MSG_ID_HEADER, Bus
from ucoder_common.errors import DeadlineExceeded
from ucoder_common.localstack import REPO_ROOT, health, log_tail
from ucoder_common.pb import common_pb2, executor_pb2

STAGE = "executor"
WORKERS = 3
PROBLEMS = 12
INPUTS = (1, 5, -3)
ACK_WAIT_S = 3
SLEEP_S = 0.3  # per call: a job (4 candidates x 3 tests on 2 sandboxes) takes a few seconds
# Candidate kinds, in candidate order; the expected outcome of each is checked per test.
KINDS = ("right", "right_too", "wrong", "raises")


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen[bytes]
    log: Path
    ready_file: Path
    grpc_port: int = 0
    metrics_port: int = 0

    def tail(self) -> str:
        return f"--- executor {self.index} ({self.log}) ---\n{log_tail(self.log, 40)}"


def start_worker(nats_url: str, tmp_path: Path, index: int) -> Worker:
    log = tmp_path / f"executor-{index}.log"
    ready_file = tmp_path / f"executor-{index}.ready.json"
    env = {
        **os.environ,
        "UCODER_NATS_URL": nats_url,
        "UCODER_GRPC_PORT": "0",
        "UCODER_METRICS_PORT": "0",
        "UCODER_READY_FILE": str(ready_file),
        "UCODER_SHUTDOWN_GRACE_S": "2",
        "UCODER_EXECUTOR_BACKEND": "process",
        "UCODER_EXECUTOR_ALLOW_UNSANDBOXED": "1",
        "UCODER_EXECUTOR_SANDBOXES": "2",
        "UCODER_EXECUTOR_CONCURRENCY": "2",
        "UCODER_EXECUTOR_ACK_WAIT_S": str(ACK_WAIT_S),
    }
    with open(log, "ab") as fh:
        # Its own session, like the local stack: a crash is simulated on the whole group.
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.executor"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Worker(index, proc, log, ready_file)


async def wait_serving(workers: list[Worker], timeout_s: float = 60.0) -> None:
    """Until every worker wrote its ready file (workers pulling) and reports SERVING."""
    deadline = time.monotonic() + timeout_s
    waiting = list(workers)
    while waiting:
        for w in list(waiting):
            assert w.proc.poll() is None, f"executor {w.index} exited with {w.proc.returncode}\n{w.tail()}"
            if not w.ready_file.exists():
                continue
            ready = json.loads(w.ready_file.read_text())
            w.grpc_port, w.metrics_port = ready["grpc_port"], ready["metrics_port"]
            if await asyncio.to_thread(health, f"127.0.0.1:{w.grpc_port}") == "SERVING":
                waiting.remove(w)
        assert time.monotonic() < deadline, "not serving in time:\n" + "\n".join(w.tail() for w in waiting)
        await asyncio.sleep(0.1)


def metric(port: int, name: str, **labels: str) -> float:
    """One sample of a worker's /metrics (0 when the series does not exist yet)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def descendants(pid: int) -> list[int]:
    """All processes below `pid`, from /proc (sandboxes sit in sessions of their own)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            children[int(text[text.rfind(")") + 2 :].split()[1])].append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def crash(pid: int) -> None:
    """SIGKILL a worker's process group and every sandbox it spawned, as a lost machine would."""
    tree = descendants(pid)
    # The worker first, so it cannot start a new sandbox; the snapshot still names the old ones.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    for child in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def stop(workers: list[Worker]) -> None:
    for w in workers:
        if w.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(w.proc.pid, signal.SIGTERM)
    for w in workers:
        try:
            w.proc.wait(10)
        except subprocess.TimeoutExpired:
            crash(w.proc.pid)
            w.proc.wait(5)


def candidate(kind: str, offset: int) -> str:
    body = {
        "right": f"return x + {offset}",
        "right_too": f"return {offset} + x",
        "wrong": f"return x + {offset + 1}",
        "raises": "raise ValueError(x)",
    }[kind]
    return f"import time\n\n\ndef solve(x):\n    time.sleep({SLEEP_S})\n    {body}\n"


def job(iteration_id: str, index: int) -> executor_pb2.ExecuteRequest:
    """Problem `index` asks for x + index; its candidates are of each kind in KINDS."""
    return executor_pb2.ExecuteRequest(
        iteration_id=iteration_id,
        problem_id=f"p{index:02d}",
        entry_point="solve",
        candidates=[
            common_pb2.Candidate(candidate_id=f"c{k}", code=candidate(kind, index))
            for k, kind in enumerate(KINDS)
        ],
        tests=[
            common_pb2.TestCase(test_id=f"t{t}", args_literal=f"({x},)", expected_literal=str(x + index))
            for t, x in enumerate(INPUTS)
        ],
        timeout_per_test_s=2.0,
        memory_limit_mb=256,
    )


def job_id(iteration_id: str, problem_id: str) -> str:
    return f"{iteration_id}:{STAGE}:{problem_id}"  # as Orchestrator._job names it


async def fetch(sub: JetStreamContext.PullSubscription, timeout_s: float) -> list[Msg]:
    try:
        return await sub.fetch(PROBLEMS, timeout=timeout_s)
    except (nats.errors.TimeoutError, TimeoutError):
        return []


def check_answer(answer: executor_pb2.ExecuteResponse, iteration_id: str) -> None:
    offset = int(answer.problem_id[1:])
    assert answer.iteration_id == iteration_id and answer.error == "" and answer.backend == "process"
    assert [r.candidate_id for r in answer.results] == [f"c{k}" for k in range(len(KINDS))]
    for kind, result in zip(KINDS, answer.results, strict=True):
        assert len(result.outcomes) == len(INPUTS), (answer.problem_id, kind)
        for x, outcome in zip(INPUTS, result.outcomes, strict=True):
            where = (answer.problem_id, kind, x)
            if kind == "raises":
                assert outcome.kind == common_pb2.OUTCOME_KIND_RAISED, where
                assert outcome.exception_type == "ValueError" and not outcome.passed, where
                continue
            value = x + offset + (kind == "wrong")
            assert outcome.kind == common_pb2.OUTCOME_KIND_RETURNED, where
            assert outcome.value_digest == canonical_digest(value), where
            assert outcome.passed == (kind != "wrong"), where


async def test_killed_worker_jobs_are_redelivered_and_answered_once(
    nats_server: NatsServer, bus: Bus, tmp_path: Path
) -> None:
    iteration_id = f"faults-{uuid.uuid4().hex[:8]}"
    results_durable = f"faults-results-{uuid.uuid4().hex[:8]}"
    workers = [start_worker(nats_server.url, tmp_path, i) for i in range(WORKERS)]
    try:
        await wait_serving(workers)
        # Before publishing, so every answer is in the results stream for us (work-queue retention).
        results = await bus.js.pull_subscribe(
            subjects.result_subject(STAGE), durable=results_durable, stream=subjects.RESULTS_STREAM
        )
        before = await bus.js.consumer_info(subjects.WORK_STREAM, STAGE)
        assert before.config.ack_wait == ACK_WAIT_S
        jobs = [job(iteration_id, i) for i in range(PROBLEMS)]
        started = time.monotonic()
        for request in jobs:
            await bus.publish(
                subjects.work_subject(STAGE), request, msg_id=job_id(iteration_id, request.problem_id)
            )

        answers: list[tuple[float, Msg]] = []
        victim: Worker | None = None
        killed_at = 0.0
        deadline = started + 45.0
        queue_seen = 0.0  # the largest backlog + in-flight a worker's gauges showed mid-batch
        while len(answers) < PROBLEMS and time.monotonic() < deadline:
            for msg in await fetch(results, 0.5):
                await msg.ack()
                answers.append((time.monotonic(), msg))
            for w in workers:
                if w is not victim:
                    port = w.metrics_port
                    depth = await asyncio.to_thread(metric, port, "ucoder_executor_queue_backlog")
                    depth += await asyncio.to_thread(metric, port, "ucoder_executor_queue_in_flight")
                    queue_seen = max(queue_seen, depth)
            if victim is None and answers:
                # Mid-batch: kill a worker that is running candidates now (it holds unacked jobs).
                for w in workers:
                    if await asyncio.to_thread(metric, w.metrics_port, "ucoder_executor_busy_jobs") > 0:
                        victim = w
                        crash(w.proc.pid)
                        killed_at = time.monotonic()
                        break
                if victim is not None:
                    # A restarted orchestrator re-dispatches the same jobs: all are deduplicated.
                    for request in jobs:
                        ack = await bus.js.publish(
                            subjects.work_subject(STAGE),
                            request.SerializeToString(),
                            headers={MSG_ID_HEADER: job_id(iteration_id, request.problem_id)},
                        )
                        assert ack.duplicate, request.problem_id
        survivors = [w for w in workers if w is not victim]
        logs = "\n".join(w.tail() for w in workers)
        assert victim is not None, f"no worker was busy once answers came\n{logs}"
        assert victim.proc.wait(5) == -signal.SIGKILL
        assert len(answers) == PROBLEMS, f"{len(answers)} of {PROBLEMS} answers within 45 s\n{logs}"
        batch_s = time.monotonic() - started

        # Every job acked (none pending, none awaiting redelivery); then no late answer may come.
        while True:
            work = await bus.js.consumer_info(subjects.WORK_STREAM, STAGE)
            if work.num_pending == 0 and work.num_ack_pending == 0:
                break
            assert time.monotonic() < deadline, f"jobs still unacked: {work}\n{logs}"
            await asyncio.sleep(0.2)
        # A worker publishes its answer before acking the job, so every answer there will ever
        # be is in the stream by now: one more would be a duplicate.
        late = await fetch(results, 1.0)
        assert not late, f"{len(late)} answers after the batch was done (duplicates)"
        taken = await bus.js.consumer_info(subjects.RESULTS_STREAM, results_durable)
        assert taken.delivered.consumer_seq == PROBLEMS and taken.num_pending == 0

        # Exactly one answer per job, carrying the job's id, with the right outcomes.
        decoded = [executor_pb2.ExecuteResponse.FromString(msg.data) for _, msg in answers]
        counts = collections.Counter(a.problem_id for a in decoded)
        assert counts == {r.problem_id: 1 for r in jobs}, counts
        assert sorted((msg.headers or {}).get(MSG_ID_HEADER, "") for _, msg in answers) == sorted(
            f"{STAGE}-result:{job_id(iteration_id, r.problem_id)}" for r in jobs
        )
        for answer in decoded:
            check_answer(answer, iteration_id)

        # The kill happened mid-batch and cost a redelivery, which the survivors answered.
        deliveries = work.delivered.consumer_seq - before.delivered.consumer_seq
        assert deliveries > PROBLEMS, f"{deliveries} deliveries for {PROBLEMS} jobs: nothing redelivered"
        assert any(at > killed_at for at, _ in answers)
        assert all(w.proc.poll() is None for w in survivors), logs
        for w in survivors:
            for outcome in ("retry", "dead_letter", "rejected"):
                assert metric(w.metrics_port, "ucoder_executor_jobs_total", outcome=outcome) == 0, logs
        # What the dashboards read: executions by kind, per-test latency, sandbox starts, backlog.
        port = survivors[0].metrics_port
        assert (
            sum(
                metric(w.metrics_port, "ucoder_executor_executions_total", kind="returned") for w in survivors
            )
            > 0
        )
        assert (
            sum(metric(w.metrics_port, "ucoder_executor_executions_total", kind="raised") for w in survivors)
            > 0
        )
        assert metric(port, "ucoder_executor_test_duration_seconds_count") > 0
        assert metric(port, "ucoder_executor_sandbox_starts_total") >= 2  # one per sandbox
        assert queue_seen > 0, "the queue gauges never showed the batch"
        await asyncio.sleep(BACKLOG_POLL_S + 0.5)  # the gauges are refreshed every few seconds
        assert (
            metric(port, "ucoder_executor_queue_backlog") + metric(port, "ucoder_executor_queue_in_flight")
            == 0
        )
        info = await bus.js.stream_info(subjects.DLQ_STREAM, subjects_filter=subjects.dlq_subject(STAGE))
        assert not info.state.subjects, info.state.subjects
        print(
            f"batch {batch_s:.1f} s, worker {victim.index} killed at {killed_at - started:.1f} s, "
            f"{deliveries} deliveries for {PROBLEMS} jobs, "
            f"{sum(at > killed_at for at, _ in answers)} answers after the kill"
        )
    finally:
        stop(workers)
        # Leave the session's server as other tests expect it: no executor consumer of ours.
        for stream, durable in ((subjects.RESULTS_STREAM, results_durable), (subjects.WORK_STREAM, STAGE)):
            with contextlib.suppress(Exception):
                await bus.js.delete_consumer(stream, durable)


async def test_a_request_past_the_job_deadline_fails_and_the_executor_serves_on() -> None:
    # issue 15: no single job may hold the executor beyond a bounded time. Real gVisor sandboxes.
    executor = Executor(ExecutorConfig(sandboxes=1, job_deadline_s=2.0, shutdown_grace_s=2))
    await executor.start()
    try:
        sleeper = "import time\ndef f(x):\n    time.sleep(30)\n    return x\n"
        slow = executor_pb2.ExecuteRequest(
            problem_id="p-slow",
            entry_point="f",
            candidates=[common_pb2.Candidate(candidate_id=f"c{i}", code=sleeper) for i in range(3)],
            tests=[common_pb2.TestCase(test_id="t0", args_literal="(1,)")],
            timeout_per_test_s=40,
        )
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match=r"job_deadline_s \(2 s\) with 3 candidates x 1 tests"):
            await executor.execute(slow)
        assert time.monotonic() - started < 10
        quick = executor_pb2.ExecuteRequest(
            problem_id="p-quick",
            entry_point="f",
            candidates=[common_pb2.Candidate(candidate_id="c", code="def f(x):\n    return x + 1\n")],
            tests=[common_pb2.TestCase(test_id="t0", args_literal="(1,)", expected_literal="2")],
        )
        answer = await executor.execute(quick)
        assert [o.passed for o in answer.results[0].outcomes] == [True]
    finally:
        await executor.close()
