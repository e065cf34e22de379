"""The JetStream worker base against a real nats-server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import nats
import pytest
from prometheus_client import REGISTRY

from ucoder_common import subjects
from ucoder_common.bus import Bus, Retry, StageWorker, stage_worker
from ucoder_common.errors import DeadlineExceeded
from ucoder_common.pb import common_pb2, orchestrator_pb2, testsynth_pb2


async def collect(bus: Bus, subject: str, count: int, timeout_s: float = 10.0) -> list[bytes]:
    """Take `count` messages on `subject` (the test plays the consumer, e.g. the orchestrator)."""
    sub = await bus.js.pull_subscribe(subject, durable="collect-" + uuid.uuid4().hex[:8])
    out: list[bytes] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(out) < count:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TimeoutError(f"got {len(out)} of {count} messages on {subject}")
        try:
            msgs = await sub.fetch(count - len(out), timeout=min(remaining, 1.0))
        except nats.errors.TimeoutError:
            continue
        for msg in msgs:
            await msg.ack()
            out.append(msg.data)
    await sub.unsubscribe()
    return out


async def answered_problems(bus: Bus, stage: str, worker: StageWorker[Any, Any], count: int) -> list[str]:
    """The problem ids of the next `count` answers of `stage`, sorted; then the worker is stopped
    (after a pause in which a wrong extra answer would be published)."""
    answers = await collect(bus, subjects.result_subject(stage), count)
    await asyncio.sleep(0.5)
    await worker.stop(1.0)
    return sorted(testsynth_pb2.SynthesizeTestsResponse.FromString(a).problem_id for a in answers)


def request(problem_id: str, iteration_id: str = "it-1") -> testsynth_pb2.SynthesizeTestsRequest:
    return testsynth_pb2.SynthesizeTestsRequest(
        iteration_id=iteration_id, problem=common_pb2.Problem(problem_id=problem_id), count=3
    )


@pytest.fixture
def stage() -> str:
    # A fresh stage name per test: its own subjects and durable consumer.
    return "t" + uuid.uuid4().hex[:8]


async def test_job_is_processed_and_answered_once(bus: Bus, stage: str) -> None:
    calls: list[str] = []

    async def process(req: testsynth_pb2.SynthesizeTestsRequest) -> testsynth_pb2.SynthesizeTestsResponse:
        calls.append(req.problem.problem_id)
        return testsynth_pb2.SynthesizeTestsResponse(
            iteration_id=req.iteration_id, problem_id=req.problem.problem_id, generated=7
        )

    worker = stage_worker(
        bus, stage, testsynth_pb2.SynthesizeTestsRequest, testsynth_pb2.SynthesizeTestsResponse, process
    )
    await worker.start()
    # The same job published twice with one Nats-Msg-Id is stored once.
    for _ in range(2):
        await bus.publish(subjects.work_subject(stage), request("p1"), msg_id="job-p1")
    await bus.publish(subjects.work_subject(stage), request("p2"), msg_id="job-p2")
    assert await answered_problems(bus, stage, worker, 2) == ["p1", "p2"]
    assert sorted(calls) == ["p1", "p2"]


async def test_retry_then_success(bus: Bus, stage: str) -> None:
    attempts = 0

    async def process(req: testsynth_pb2.SynthesizeTestsRequest) -> testsynth_pb2.SynthesizeTestsResponse:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise Retry("sampler not ready")
        return testsynth_pb2.SynthesizeTestsResponse(problem_id=req.problem.problem_id)

    worker = stage_worker(
        bus,
        stage,
        testsynth_pb2.SynthesizeTestsRequest,
        testsynth_pb2.SynthesizeTestsResponse,
        process,
        base_delay_s=0.1,
    )
    await worker.start()
    await bus.publish(subjects.work_subject(stage), request("p1"), msg_id="job-1")
    answers = await collect(bus, subjects.result_subject(stage), 1)
    await worker.stop(1.0)
    assert attempts == 3
    assert testsynth_pb2.SynthesizeTestsResponse.FromString(answers[0]).error == ""


async def test_poison_goes_to_dead_letter_and_answers_with_error(bus: Bus, stage: str) -> None:
    async def process(req: testsynth_pb2.SynthesizeTestsRequest) -> testsynth_pb2.SynthesizeTestsResponse:
        raise ValueError("cannot parse the signature")

    worker = stage_worker(
        bus,
        stage,
        testsynth_pb2.SynthesizeTestsRequest,
        testsynth_pb2.SynthesizeTestsResponse,
        process,
        max_deliver=2,
        base_delay_s=0.1,
    )
    await worker.start()
    await bus.publish(subjects.work_subject(stage), request("bad"), msg_id="job-bad")
    # A payload that is not the request type is rejected at once.
    await bus.js.publish(
        subjects.work_subject(stage), b"\xff\xff not a proto", headers={"Nats-Msg-Id": "junk"}
    )
    answers = await collect(bus, subjects.result_subject(stage), 1)
    dead = await collect(bus, subjects.dlq_subject(stage), 2)
    await worker.stop(1.0)
    answer = testsynth_pb2.SynthesizeTestsResponse.FromString(answers[0])
    assert answer.problem_id == "bad"
    assert answer.iteration_id == "it-1"
    assert "failed 2 times" in answer.error and "cannot parse the signature" in answer.error
    assert b"\xff\xff not a proto" in dead


async def test_a_job_without_a_valid_iteration_id_is_dead_lettered_at_once(bus: Bus, stage: str) -> None:
    # Found from outside: the "has its iteration ended?" KV lookup raised InvalidKeyError on a
    # non-ASCII id, and the job was retried until max_deliver.
    calls: list[str] = []

    async def process(req: testsynth_pb2.SynthesizeTestsRequest) -> testsynth_pb2.SynthesizeTestsResponse:
        calls.append(req.iteration_id)
        return testsynth_pb2.SynthesizeTestsResponse(problem_id=req.problem.problem_id)

    worker = stage_worker(
        bus, stage, testsynth_pb2.SynthesizeTestsRequest, testsynth_pb2.SynthesizeTestsResponse, process
    )
    await worker.start()
    await bus.publish(subjects.work_subject(stage), request("p1", iteration_id="é"), msg_id="job-e")
    # An empty payload decodes as a default job, of no iteration.
    await bus.js.publish(subjects.work_subject(stage), b"", headers={"Nats-Msg-Id": "job-empty"})
    dead = await collect(bus, subjects.dlq_subject(stage), 2, timeout_s=5.0)
    await worker.stop(1.0)
    ids = sorted(testsynth_pb2.SynthesizeTestsRequest.FromString(d).iteration_id for d in dead)
    assert ids == ["", "é"]
    assert calls == []


async def test_a_job_past_its_deadline_is_dead_lettered_at_once(bus: Bus, stage: str) -> None:
    # A job that ran past its service's deadline would take as long again: not retried.
    calls: list[str] = []

    async def process(req: testsynth_pb2.SynthesizeTestsRequest) -> testsynth_pb2.SynthesizeTestsResponse:
        calls.append(req.problem.problem_id)
        raise DeadlineExceeded("the request ran past job_deadline_s (1 s)")

    worker = stage_worker(
        bus, stage, testsynth_pb2.SynthesizeTestsRequest, testsynth_pb2.SynthesizeTestsResponse, process
    )
    await worker.start()
    # Message ids are deduplicated across the work stream: one of its own.
    await bus.publish(subjects.work_subject(stage), request("slow"), msg_id="job-past-deadline")
    answers = await collect(bus, subjects.result_subject(stage), 1, timeout_s=5.0)
    dead = await collect(bus, subjects.dlq_subject(stage), 1, timeout_s=5.0)
    await asyncio.sleep(0.5)
    await worker.stop(1.0)
    answer = testsynth_pb2.SynthesizeTestsResponse.FromString(answers[0])
    assert answer.problem_id == "slow" and "job_deadline_s" in answer.error
    assert testsynth_pb2.SynthesizeTestsRequest.FromString(dead[0]).problem.problem_id == "slow"
    assert calls == ["slow"]  # once: no redelivery


async def test_long_job_is_kept_alive_by_in_progress(bus: Bus, stage: str) -> None:
    calls = 0

    async def process(req: testsynth_pb2.SynthesizeTestsRequest) -> testsynth_pb2.SynthesizeTestsResponse:
        nonlocal calls
        calls += 1
        await asyncio.sleep(3.5)  # longer than ack_wait: only heartbeats prevent a redelivery
        return testsynth_pb2.SynthesizeTestsResponse(problem_id=req.problem.problem_id)

    worker = stage_worker(
        bus,
        stage,
        testsynth_pb2.SynthesizeTestsRequest,
        testsynth_pb2.SynthesizeTestsResponse,
        process,
        ack_wait_s=1.5,
        concurrency=2,
    )
    await worker.start()
    await bus.publish(subjects.work_subject(stage), request("slow"), msg_id="job-slow")
    await collect(bus, subjects.result_subject(stage), 1)
    await asyncio.sleep(1.0)
    await worker.stop(1.0)
    assert calls == 1


async def test_restarted_worker_updates_its_durable_consumer(bus: Bus, stage: str) -> None:
    # A durable consumer outlives its worker (a persistent store); a worker started with other
    # settings must apply them instead of silently binding to the old ones.
    async def process(req: testsynth_pb2.SynthesizeTestsRequest) -> testsynth_pb2.SynthesizeTestsResponse:
        return testsynth_pb2.SynthesizeTestsResponse(iteration_id=req.iteration_id)

    for ack_wait_s in (60.0, 3.0):
        worker = stage_worker(
            bus,
            stage,
            testsynth_pb2.SynthesizeTestsRequest,
            testsynth_pb2.SynthesizeTestsResponse,
            process,
            ack_wait_s=ack_wait_s,
        )
        await worker.start()
        info = await bus.js.consumer_info(worker.stream, worker.durable)
        await worker.stop(0.5)
        assert info.config.ack_wait == ack_wait_s


async def test_kv_keys_lists_every_key_with_the_prefix_sorted(bus: Bus) -> None:
    kv = bus.kv(subjects.ITERATIONS_BUCKET)
    prefix = "kvtest" + uuid.uuid4().hex[:8] + "."
    names = [f"{prefix}{i:03d}" for i in range(40)]
    for name in reversed(names):
        await kv.put(name, b"x")
    await kv.put(names[0], b"y")  # a second revision is still one key
    await kv.put("other" + prefix + "1", b"x")  # another prefix is left out
    assert await bus.kv_keys(subjects.ITERATIONS_BUCKET, prefix) == names
    # A deleted key is listed (its value reads as None); an unknown prefix lists nothing.
    await kv.delete(names[1])
    assert names[1] in await bus.kv_keys(subjects.ITERATIONS_BUCKET, prefix)
    assert await bus.kv_keys(subjects.ITERATIONS_BUCKET, "nothing-" + prefix) == []


async def test_jobs_of_an_ended_iteration_are_skipped(bus: Bus, stage: str) -> None:
    # E.g. the jobs a restarted orchestrator re-dispatched for an iteration that was then cancelled.
    calls: list[str] = []

    async def process(req: testsynth_pb2.SynthesizeTestsRequest) -> testsynth_pb2.SynthesizeTestsResponse:
        calls.append(req.problem.problem_id)
        return testsynth_pb2.SynthesizeTestsResponse(problem_id=req.problem.problem_id)

    kv = bus.kv(subjects.ITERATIONS_BUCKET)
    ids = {phase: f"it-{stage}-{phase}" for phase in ("cancelled", "failed", "running")}
    phases = {
        "cancelled": orchestrator_pb2.ITERATION_PHASE_CANCELLED,
        "failed": orchestrator_pb2.ITERATION_PHASE_FAILED,
        "running": orchestrator_pb2.ITERATION_PHASE_RUNNING,
    }
    for name, iteration_id in ids.items():
        state = orchestrator_pb2.Iteration(iteration_id=iteration_id, phase=phases[name])
        await kv.put(subjects.iteration_key(iteration_id), state.SerializeToString())
    worker = stage_worker(
        bus, stage, testsynth_pb2.SynthesizeTestsRequest, testsynth_pb2.SynthesizeTestsResponse, process
    )
    await worker.start()
    for name, iteration_id in ids.items():
        await bus.publish(subjects.work_subject(stage), request(f"p-{name}", iteration_id), msg_id=name)
    # An iteration the bucket does not know (no orchestrator) is served as before.
    await bus.publish(subjects.work_subject(stage), request("p-unknown", "it-unknown"), msg_id="unknown")
    assert await answered_problems(bus, stage, worker, 2) == ["p-running", "p-unknown"]
    assert sorted(calls) == ["p-running", "p-unknown"]
    skipped = REGISTRY.get_sample_value(f"ucoder_{stage}_jobs_total", {"outcome": "skipped"})
    assert skipped == 2
    # Skipped jobs are acknowledged: nothing is left in the stage's queue.
    info = await bus.js.consumer_info(subjects.WORK_STREAM, stage)
    assert (info.num_pending, info.num_ack_pending) == (0, 0)
