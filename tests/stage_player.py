"""Playing a model-bound stage in integration tests: take its jobs, answer on its result subject.

Used where a test needs answers a real model cannot be made to give on demand (each test says
which); everything downstream of the answers (orchestrator, executor, clusterer) stays real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nats
from google.protobuf.message import Message

from ucoder_common import subjects
from ucoder_common.bus import Bus
from ucoder_common.localstack import StackInfo, StackPaths, start_stack, stop_stack

PLAYED_ENV = {
    "UCODER_EXECUTOR_TIMEOUT_PER_TEST_S": "1.0",
    # The played candidates make small clusters that the calibrated confidence threshold
    # (0.95) would withhold; these tests are about the pipeline, not about abstention.
    "UCODER_CLUSTERER_DEFAULT_MIN_CONFIDENCE": "0",
}


@contextmanager
def played_stack(home: Path) -> Iterator[StackInfo]:
    """The real orchestrator, executor (gVisor) and clusterer on a local NATS, under ``home``;
    the model-bound stages are left for the test to play."""
    paths = StackPaths(home)
    info = start_stack(
        paths,
        services=("orchestrator", "executor", "clusterer"),
        extra_env=PLAYED_ENV,
        timeout_s=120,
    )
    try:
        yield info
    finally:
        stop_stack(paths)


async def take_job(bus: Bus, stage: str, request_type: type[Message], timeout_s: float = 30.0) -> Message:
    """Take the next job of `stage` from its durable consumer, as the stage's service would."""
    sub = await bus.js.pull_subscribe(
        subjects.work_subject(stage), durable=stage, stream=subjects.WORK_STREAM
    )
    deadline = asyncio.get_running_loop().time() + timeout_s
    try:
        while asyncio.get_running_loop().time() < deadline:
            try:
                (msg,) = await sub.fetch(1, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            await msg.ack()
            request = request_type()
            request.ParseFromString(msg.data)
            return request
    finally:
        await sub.unsubscribe()
    raise TimeoutError(f"no {stage} job within {timeout_s} s")


async def answer(bus: Bus, stage: str, response: Message, key: str, prefix: str = "test") -> None:
    """Publish `response` as `stage`'s result (deduplicated by NATS on prefix-stage-key)."""
    await bus.publish(subjects.result_subject(stage), response, msg_id=f"{prefix}-{stage}-{key}")
