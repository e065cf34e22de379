"""Pure logic of the orchestrator: spec validation and defaults, stage bookkeeping, training data.

No I/O here: everything takes and returns protobuf messages, so it is unit-tested directly.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ucoder_common import invalid_tests
from ucoder_common.errors import InvalidArgument
from ucoder_common.pb import (
    clusterer_pb2,
    common_pb2,
    executor_pb2,
    orchestrator_pb2,
    sampler_pb2,
    trainer_pb2,
)
from ucoder_common.validation import MAX_COMPLETION_TOKENS, MAX_SAMPLES_PER_PROBLEM, shown

Stage = orchestrator_pb2.Stage
Phase = orchestrator_pb2.IterationPhase

STAGES: tuple[int, ...] = (
    orchestrator_pb2.STAGE_PROBLEMS,
    orchestrator_pb2.STAGE_TESTS,
    orchestrator_pb2.STAGE_SAMPLING,
    orchestrator_pb2.STAGE_EXECUTION,
    orchestrator_pb2.STAGE_CLUSTERING,
    orchestrator_pb2.STAGE_TRAINING,
    orchestrator_pb2.STAGE_EVALUATION,
)
# Stages every problem goes through, in order (training and evaluation are per iteration).
PROBLEM_STAGES: tuple[int, ...] = STAGES[1:5]

LIMITS = {"num_problems": 10_000, "tests_per_problem": 1_000, "samples_per_problem": MAX_SAMPLES_PER_PROBLEM}
DEFAULT_RHO = 0.8
DEFAULT_TAU = 2
DEFAULT_TEMPERATURE = 0.8
DEFAULT_MAX_TOKENS = 256
DEFAULT_EPOCHS = 1
DEFAULT_PATIENCE = 2
SAMPLING_MODES = ("adaptive", "fixed")
# The clusterer's selection rules (services/clusterer/core.py SelectionRule; a unit test keeps them equal).
SELECTION_RULES = ("paper", "random", "cluster", "low_ppl", "success_rate")
DEFAULT_ROUND_SIZE = 16
DEFAULT_RISK = 0.1
MAX_ITERATIONS = 100
HUMANEVAL_PROBLEMS = 164
DEFAULT_EVAL_MAX_TOKENS = 384
MAX_EVAL_SAMPLES = 1024


def stage_name(stage: int) -> str:
    return orchestrator_pb2.Stage.Name(stage).removeprefix("STAGE_").lower()


def phase_name(phase: int) -> str:
    return orchestrator_pb2.IterationPhase.Name(phase).removeprefix("ITERATION_PHASE_").lower()


def now_ms() -> int:
    return int(time.time() * 1000)


def new_iteration_id() -> str:
    """Sortable by creation time, unique, and valid as a NATS subject token and KV key."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def _is_file(path: Path) -> bool:
    """Path.is_file, False also for a name the OS refuses (too long, a NUL byte) instead of raising."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def validate_spec(spec: orchestrator_pb2.IterationSpec, served_model: str) -> orchestrator_pb2.IterationSpec:
    """Check a StartIteration spec and fill in defaults; InvalidArgument names the bad field."""
    for name, limit in LIMITS.items():
        value = getattr(spec, name)
        if value <= 0:
            raise InvalidArgument(f"spec.{name}: must be > 0, got {value}")
        if value > limit:
            raise InvalidArgument(f"spec.{name}: must be <= {limit}, got {value}")
    if math.isnan(spec.rho) or not 0.0 <= spec.rho <= 1.0:
        raise InvalidArgument(f"spec.rho: must be in [0, 1], got {spec.rho}")
    if spec.tau < 0:
        raise InvalidArgument(f"spec.tau: must be >= 0, got {spec.tau}")
    if spec.tau > spec.samples_per_problem:
        raise InvalidArgument(
            f"spec.tau: must be <= spec.samples_per_problem ({spec.samples_per_problem}), got {spec.tau}"
        )
    if math.isnan(spec.temperature) or not 0.0 <= spec.temperature <= 2.0:
        raise InvalidArgument(f"spec.temperature: must be in [0, 2], got {spec.temperature}")
    if not 0 <= spec.max_tokens <= MAX_COMPLETION_TOKENS:
        raise InvalidArgument(
            f"spec.max_tokens: must be in [0, {MAX_COMPLETION_TOKENS}], got {spec.max_tokens}"
        )
    if not 0 <= spec.train_epochs <= 100:
        raise InvalidArgument(f"spec.train_epochs: must be in [0, 100], got {spec.train_epochs}")
    if spec.signature_mode not in common_pb2.SignatureMode.values():
        raise InvalidArgument(f"spec.signature_mode: unknown value {spec.signature_mode}")
    if spec.model:
        model = Path(spec.model)
        if not _is_file(model / "config.json"):
            raise InvalidArgument(
                f"spec.model: no Hugging Face model directory (with config.json) at {shown(spec.model)}"
            )
        if served_model and model.resolve() != Path(served_model).resolve():
            raise InvalidArgument(
                f"spec.model: the stack serves {served_model}; "
                f"start it with --model {shown(spec.model)} to use another model"
            )
    if not 0 <= spec.iterations <= MAX_ITERATIONS:
        raise InvalidArgument(f"spec.iterations: must be in [0, {MAX_ITERATIONS}], got {spec.iterations}")
    if spec.skip_training and spec.iterations > 1:
        raise InvalidArgument(
            f"spec.iterations: a run of {spec.iterations} iterations trains between them; "
            "with spec.skip_training it must be 1"
        )
    if not 0 <= spec.patience <= MAX_ITERATIONS:
        raise InvalidArgument(f"spec.patience: must be in [0, {MAX_ITERATIONS}], got {spec.patience}")
    sampling = spec.sampling
    if sampling.mode and sampling.mode not in SAMPLING_MODES:
        raise InvalidArgument(
            f"spec.sampling.mode: must be one of {list(SAMPLING_MODES)}, got {shown(sampling.mode)}"
        )
    most = LIMITS["samples_per_problem"]
    if not 0 <= sampling.round_size <= most:
        raise InvalidArgument(f"spec.sampling.round_size: must be in [0, {most}], got {sampling.round_size}")
    if math.isnan(sampling.risk) or not 0.0 <= sampling.risk < 1.0:
        raise InvalidArgument(f"spec.sampling.risk: must be in [0, 1), got {sampling.risk}")
    if spec.selection_rule and spec.selection_rule not in SELECTION_RULES:
        raise InvalidArgument(
            f"spec.selection_rule: must be one of {list(SELECTION_RULES)}, got {shown(spec.selection_rule)}"
        )
    # Left unset (and the rule empty), the clusterer's configured default applies.
    if spec.HasField("min_confidence") and (
        math.isnan(spec.min_confidence) or not 0.0 <= spec.min_confidence <= 1.0
    ):
        raise InvalidArgument(f"spec.min_confidence: must be in [0, 1], got {spec.min_confidence}")
    filled = orchestrator_pb2.IterationSpec()
    filled.CopyFrom(spec)
    filled.sampling.mode = sampling.mode or "adaptive"
    filled.sampling.round_size = sampling.round_size or DEFAULT_ROUND_SIZE
    filled.sampling.risk = sampling.risk or DEFAULT_RISK
    if spec.skip_evaluation:
        filled.ClearField("evaluation")
    else:
        filled.evaluation.CopyFrom(validate_eval_spec(spec.evaluation, "spec.evaluation"))
    filled.iterations = spec.iterations or 1
    filled.patience = spec.patience or DEFAULT_PATIENCE
    filled.rho = spec.rho or DEFAULT_RHO
    filled.tau = spec.tau or DEFAULT_TAU
    filled.temperature = spec.temperature or DEFAULT_TEMPERATURE
    filled.max_tokens = spec.max_tokens or DEFAULT_MAX_TOKENS
    filled.train_epochs = spec.train_epochs or DEFAULT_EPOCHS
    filled.signature_mode = spec.signature_mode or common_pb2.SIGNATURE_MODE_OUTPUT
    filled.model = served_model or spec.model
    return filled


def validate_eval_spec(spec: orchestrator_pb2.EvalSpec, field: str) -> orchestrator_pb2.EvalSpec:
    """Check an EvalSpec and fill in defaults; ``field`` names it in errors (``spec.evaluation``)."""
    if not 0 <= spec.problems <= HUMANEVAL_PROBLEMS:
        raise InvalidArgument(f"{field}.problems: must be in [0, {HUMANEVAL_PROBLEMS}], got {spec.problems}")
    if not 0 <= spec.samples <= MAX_EVAL_SAMPLES:
        raise InvalidArgument(f"{field}.samples: must be in [0, {MAX_EVAL_SAMPLES}], got {spec.samples}")
    if math.isnan(spec.temperature) or not 0.0 <= spec.temperature <= 2.0:
        raise InvalidArgument(f"{field}.temperature: must be in [0, 2], got {spec.temperature}")
    if not 0 <= spec.max_tokens <= MAX_COMPLETION_TOKENS:
        raise InvalidArgument(
            f"{field}.max_tokens: must be in [0, {MAX_COMPLETION_TOKENS}], got {spec.max_tokens}"
        )
    samples = spec.samples or 1
    for k in spec.ks:
        if not 1 <= k <= samples:
            raise InvalidArgument(f"{field}.ks: every k must be in [1, samples={samples}], got {k}")
    if samples > 1 and spec.temperature == 0.0:
        raise InvalidArgument(f"{field}.temperature: {samples} greedy samples would all be the same; set > 0")
    return orchestrator_pb2.EvalSpec(
        problems=spec.problems or HUMANEVAL_PROBLEMS,
        samples=samples,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens or DEFAULT_EVAL_MAX_TOKENS,
        ks=sorted({1, *spec.ks}),
    )


def eval_result(
    version: int,
    spec: orchestrator_pb2.EvalSpec,
    pass_at_k: dict[int, float],
    problems: int,
    samples: int,
    seconds: float,
) -> orchestrator_pb2.EvalResult:
    return orchestrator_pb2.EvalResult(
        model_version=version,
        pass_at_1=pass_at_k.get(1, 0.0),
        pass_at_k=pass_at_k,
        num_problems=problems,
        num_samples=samples,
        seconds=seconds,
        finished_unix_ms=now_ms(),
        spec=spec,
    )


def new_iteration(
    iteration_id: str,
    spec: orchestrator_pb2.IterationSpec,
    model_version: int,
    previous: orchestrator_pb2.Iteration | None = None,
) -> orchestrator_pb2.Iteration:
    """A running iteration; ``previous`` is the iteration of the same run it continues."""
    it = orchestrator_pb2.Iteration(
        iteration_id=iteration_id,
        spec=spec,
        phase=orchestrator_pb2.ITERATION_PHASE_RUNNING,
        stage=orchestrator_pb2.STAGE_PROBLEMS,
        model_version_in=model_version,
        created_unix_ms=now_ms(),
        run_id=iteration_id,
        run_index=1,
        best_version=model_version,
    )
    if previous is not None:
        it.run_id = previous.run_id or previous.iteration_id
        it.run_index = max(previous.run_index, 1) + 1
        # Carried in; run_decision() replaces them once this iteration is measured.
        it.best_version = previous.best_version
        it.best_pass_at_1 = previous.best_pass_at_1
        it.stale_iterations = previous.stale_iterations
        # The version this one starts from was measured by the previous iteration: reuse that.
        for name in ("eval_out", "eval_in"):
            measured: orchestrator_pb2.EvalResult = getattr(previous, name)
            if previous.HasField(name) and measured.model_version == model_version:
                it.eval_in.CopyFrom(measured)
                break
    for stage in STAGES:
        it.stages.add(stage=stage)
    stats(it, orchestrator_pb2.STAGE_PROBLEMS).total = 1
    stats(it, orchestrator_pb2.STAGE_PROBLEMS).started_unix_ms = it.created_unix_ms
    return it


def stats(it: orchestrator_pb2.Iteration, stage: int) -> orchestrator_pb2.StageStats:
    index = STAGES.index(stage)
    while len(it.stages) <= index:  # iterations saved before a stage existed
        it.stages.add(stage=STAGES[len(it.stages)])
    return it.stages[index]


def mark_started(it: orchestrator_pb2.Iteration, stage: int | None) -> None:
    """Stamp the start of a stage when its first job goes out."""
    if stage is not None and not stats(it, stage).started_unix_ms:
        stats(it, stage).started_unix_ms = now_ms()


def mark_progress(it: orchestrator_pb2.Iteration, stage: int, *, done: int = 0, failed: int = 0) -> None:
    """Count finished (or failed) units of a stage; stamps start and finish times."""
    entry = stats(it, stage)
    if not entry.started_unix_ms:
        entry.started_unix_ms = now_ms()
    entry.done += done
    entry.failed += failed
    if entry.total and entry.done + entry.failed >= entry.total and not entry.finished_unix_ms:
        entry.finished_unix_ms = now_ms()


def finished_stages(it: orchestrator_pb2.Iteration) -> list[int]:
    """The stages of `it` whose every unit is done or failed, in pipeline order."""
    return [int(entry.stage) for entry in it.stages if entry.finished_unix_ms]


def stage_seconds(it: orchestrator_pb2.Iteration, stage: int) -> float | None:
    """Wall time of a finished stage, from when its first problem reached it (done or failed) to its
    finish; None when nothing in it was done (a stage that only failed, e.g. no problem kept a test,
    says nothing about its cost)."""
    entry = stats(it, stage)
    if not entry.finished_unix_ms or not entry.done:
        return None
    return max(0, entry.finished_unix_ms - entry.started_unix_ms) / 1000


def consensus_rate(it: orchestrator_pb2.Iteration) -> float:
    """Share of the iteration's problems whose consensus solution was selected (0.0 with no problems)."""
    return it.selected / len(it.problem_ids) if it.problem_ids else 0.0


def fail_problem_from(it: orchestrator_pb2.Iteration, stage: int) -> None:
    """A problem failed at `stage`: it counts as failed there and in every later problem stage."""
    for later in PROBLEM_STAGES[PROBLEM_STAGES.index(stage) :]:
        mark_progress(it, later, failed=1)


def _position(stage: int) -> int:
    """A stage's place in the pipeline (-1 for none, e.g. STAGE_UNSPECIFIED)."""
    return STAGES.index(stage) if stage in STAGES else -1


def problem_counted_failed(ps: orchestrator_pb2.ProblemState, stage: int) -> bool:
    """Whether ``ps`` counts as failed in problem stage ``stage`` (failed there or earlier)."""
    return bool(ps.error) and 0 <= _position(ps.failed_from) <= _position(stage)


def problem_counted_done(ps: orchestrator_pb2.ProblemState, stage: int) -> bool:
    """Whether ``ps`` counts as done in problem stage ``stage`` (the state machine's rule: tests,
    sampling and execution are counted in the first round, clustering when its decision is final)."""
    if problem_counted_failed(ps, stage):
        return False
    if stage == orchestrator_pb2.STAGE_CLUSTERING:
        return ps.stage_done == orchestrator_pb2.STAGE_CLUSTERING
    return ps.rounds >= 1 or _position(ps.stage_done) >= _position(stage)


def derive_totals(it: orchestrator_pb2.Iteration, problems: list[orchestrator_pb2.ProblemState]) -> bool:
    """Set ``it``'s totals over problems and its problem stages' done and failed counts from the
    problems' own state; True when any of them changed.

    A problem's state and the iteration's are two KV writes: an orchestrator killed between them
    left the totals short for good, since the redelivered answer counts as applied. The problems'
    state is the truth; this makes the summary agree with it again (on a redelivery and after a
    restart). Stamps a stage finished that now is.
    """
    before = it.SerializeToString(deterministic=True)
    it.tests_kept = sum(len(p.tests) for p in problems)
    it.tests_mutated = sum(p.tests_mutated for p in problems)
    it.candidates = sum(len(p.candidates) for p in problems)
    it.executions = sum(len(r.outcomes) for p in problems for r in p.results)
    it.tests_likely_invalid = sum(len(p.likely_invalid_tests) for p in problems)
    it.selected = sum(
        1 for p in problems if p.stage_done == orchestrator_pb2.STAGE_CLUSTERING and p.selection.selected
    )
    for name in ("tests_rejected", "tests_repaired"):
        summed: Counter[str] = Counter()
        for p in problems:
            summed.update(getattr(p, name))
        getattr(it, name).clear()
        getattr(it, name).update(summed)
    for stage in PROBLEM_STAGES:
        entry = stats(it, stage)
        entry.done = sum(1 for p in problems if problem_counted_done(p, stage))
        entry.failed = sum(1 for p in problems if problem_counted_failed(p, stage))
        if entry.total and entry.done + entry.failed >= entry.total and not entry.finished_unix_ms:
            entry.finished_unix_ms = now_ms()
    return it.SerializeToString(deterministic=True) != before


def next_problem_stage(stage_done: int) -> int | None:
    """The stage a problem goes to after finishing `stage_done` (None after clustering)."""
    if stage_done == orchestrator_pb2.STAGE_PROBLEMS:
        return orchestrator_pb2.STAGE_TESTS
    index = PROBLEM_STAGES.index(stage_done)
    return PROBLEM_STAGES[index + 1] if index + 1 < len(PROBLEM_STAGES) else None


def sampling_round_size(spec: orchestrator_pb2.IterationSpec, ps: orchestrator_pb2.ProblemState) -> int:
    """Candidates the next sampling job of a problem asks for.

    Fixed mode: the whole budget at once. Adaptive: ``round_size`` first, then what the
    clusterer asked for (``ps.round_size``), never past the budget.
    """
    budget = spec.samples_per_problem
    left = budget - len(ps.candidates)
    if spec.sampling.mode == "fixed":
        return max(left, 0)
    wanted = ps.round_size if ps.rounds else spec.sampling.round_size or DEFAULT_ROUND_SIZE
    return max(min(wanted, left), 0)


def job_key(ps: orchestrator_pb2.ProblemState) -> str:
    """Deduplication key of a problem's job: the problem id, plus the round after the first."""
    return ps.problem.problem_id if not ps.rounds else f"{ps.problem.problem_id}.r{ps.rounds}"


def unexecuted(ps: orchestrator_pb2.ProblemState) -> list[common_pb2.Candidate]:
    """Candidates of the current round that have no results yet (results come in candidate order)."""
    return list(ps.candidates[len(ps.results) :])


def likely_invalid_test_ids(ps: orchestrator_pb2.ProblemState) -> list[str]:
    """Ids of the tests every informative candidate failed so far (see ucoder_common.invalid_tests).

    A result without one outcome per test (a malformed answer) is not evidence and is skipped.
    """
    num_tests = len(ps.tests)
    failed = [
        [o.kind != common_pb2.OUTCOME_KIND_RETURNED for o in result.outcomes]
        for result in ps.results
        if len(result.outcomes) == num_tests
    ]
    return [ps.tests[t].test_id for t in invalid_tests.likely_invalid_tests(failed)]


def stale_answer(ps: orchestrator_pb2.ProblemState, response: object) -> bool:
    """An answer for an earlier sampling round of this problem (redelivered after it was applied)."""
    if isinstance(response, sampler_pb2.SampleCandidatesResponse):
        known = {c.candidate_id for c in ps.candidates}
        return any(c.candidate_id in known for c in response.candidates)
    if isinstance(response, executor_pb2.ExecuteResponse):
        waiting = unexecuted(ps)
        return bool(response.results) and (
            not waiting or response.results[0].candidate_id != waiting[0].candidate_id
        )
    if isinstance(response, clusterer_pb2.ClusterResponse):
        return response.round != ps.rounds
    return False


def problem_finished(ps: orchestrator_pb2.ProblemState) -> bool:
    return bool(ps.error) or ps.stage_done == orchestrator_pb2.STAGE_CLUSTERING


def current_stage(it: orchestrator_pb2.Iteration) -> int:
    """The earliest stage with unfinished work (what a progress display highlights)."""
    if evaluation_pending(it):
        return orchestrator_pb2.STAGE_EVALUATION  # the training stage stays empty when nothing was selected
    for entry in it.stages:
        if entry.total == 0 or entry.done + entry.failed < entry.total:
            return int(entry.stage)
    return orchestrator_pb2.STAGE_TRAINING


def training_examples(problems: list[orchestrator_pb2.ProblemState]) -> list[common_pb2.TrainExample]:
    """(prompt, completion) pairs of the selected solutions; the completion is the body after the prompt."""
    examples = []
    for ps in problems:
        selection = ps.selection
        if ps.error or not selection.selected or not selection.code.startswith(ps.problem.prompt):
            continue
        completion = selection.code[len(ps.problem.prompt) :]
        if completion.strip():
            examples.append(
                common_pb2.TrainExample(
                    problem_id=ps.problem.problem_id, prompt=ps.problem.prompt, completion=completion
                )
            )
    return examples


def train_request(
    it: orchestrator_pb2.Iteration, examples: list[common_pb2.TrainExample]
) -> trainer_pb2.TrainRequest:
    return trainer_pb2.TrainRequest(
        iteration_id=it.iteration_id,
        examples=examples,
        base_version=it.model_version_in,
        epochs=it.spec.train_epochs,
    )


def event(it: orchestrator_pb2.Iteration, stage: int, message: str = "") -> orchestrator_pb2.ProgressEvent:
    entry = stats(it, stage)
    return orchestrator_pb2.ProgressEvent(
        iteration_id=it.iteration_id,
        unix_ms=now_ms(),
        stage=stage,
        done=entry.done,
        total=entry.total,
        failed=entry.failed,
        phase=it.phase,
        message=message,
    )


# ---------------------------------------------------------------------------------------------
# Evaluation and early stopping


def evaluates(it: orchestrator_pb2.Iteration) -> bool:
    return not it.spec.skip_evaluation


def versions_to_evaluate(it: orchestrator_pb2.Iteration) -> list[tuple[str, int]]:
    """(field, version) pairs the evaluation stage still has to measure, in order."""
    if not evaluates(it):
        return []
    todo = []
    if not it.HasField("eval_in"):
        todo.append(("eval_in", it.model_version_in))
    if it.HasField("model_version_out") and not it.HasField("eval_out"):
        todo.append(("eval_out", it.model_version_out.version))
    return todo


def evaluation_pending(it: orchestrator_pb2.Iteration) -> bool:
    """The evaluation stage started and has not finished (what a restarted orchestrator resumes)."""
    entry = stats(it, orchestrator_pb2.STAGE_EVALUATION)
    return (
        it.phase == orchestrator_pb2.ITERATION_PHASE_RUNNING
        and entry.total > 0
        and not entry.finished_unix_ms
    )


@dataclass(frozen=True)
class RunDecision:
    best_version: int
    best_pass_at_1: float
    stale_iterations: int
    continue_run: bool
    message: str


def run_decision(it: orchestrator_pb2.Iteration) -> RunDecision:
    """After an iteration: the run's best version so far, and whether another iteration follows.

    With evaluation, a version is better only with a strictly higher pass@1 than the best so far
    (the first iteration's best is its input version, measured by eval_in); an iteration that
    trains nothing or does not improve counts as stale, and the run stops after ``patience``
    stale iterations in a row or after ``iterations``. Without evaluation, the newest trained
    version counts as the best and only an iteration that trains nothing is stale.
    """
    spec = it.spec
    trained = it.HasField("model_version_out")
    if it.run_index <= 1:
        best_version, stale = it.model_version_in, 0
        best_pass = it.eval_in.pass_at_1 if it.HasField("eval_in") else 0.0
    else:
        best_version, best_pass, stale = it.best_version, it.best_pass_at_1, it.stale_iterations
    if trained and evaluates(it):
        improved = it.eval_out.pass_at_1 > best_pass
        outcome = (
            f"pass@1 {it.eval_out.pass_at_1:.1%} (v{it.model_version_out.version}) "
            f"{'beats' if improved else 'does not beat'} the best {best_pass:.1%} (v{best_version})"
        )
    elif trained:
        improved, outcome = True, f"trained v{it.model_version_out.version} (not evaluated)"
    else:
        improved, outcome = False, "nothing trained"
    if improved:
        best_version, stale = it.model_version_out.version, 0
        best_pass = it.eval_out.pass_at_1 if evaluates(it) else 0.0
    else:
        stale += 1
    iterations = max(spec.iterations, 1)
    patience = spec.patience or DEFAULT_PATIENCE
    run_index = max(it.run_index, 1)
    if run_index >= iterations:
        more, verdict = False, f"run done after {run_index} iteration(s)"
    elif stale >= patience:
        more, verdict = False, f"stopped early: no improvement in {stale} iteration(s) (patience {patience})"
    else:
        more, verdict = True, f"continuing with iteration {run_index + 1} of {iterations}"
    if not more:
        verdict += f"; keeping v{best_version}"
    return RunDecision(best_version, best_pass, stale, more, f"{outcome}; {verdict}")
