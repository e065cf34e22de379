"""Pure logic of the orchestrator: spec validation and defaults, stage bookkeeping, training data.

No I/O here: everything takes and returns protobuf messages, so it is unit-tested directly.
"""

from __future__ import annotations

import math
import secrets
import time
from pathlib import Path

from ucoder_common.errors import InvalidArgument
from ucoder_common.pb import common_pb2, orchestrator_pb2, trainer_pb2

Stage = orchestrator_pb2.Stage
Phase = orchestrator_pb2.IterationPhase

STAGES: tuple[int, ...] = (
    orchestrator_pb2.STAGE_PROBLEMS,
    orchestrator_pb2.STAGE_TESTS,
    orchestrator_pb2.STAGE_SAMPLING,
    orchestrator_pb2.STAGE_EXECUTION,
    orchestrator_pb2.STAGE_CLUSTERING,
    orchestrator_pb2.STAGE_TRAINING,
)
# Stages every problem goes through, in order (training is per iteration).
PROBLEM_STAGES: tuple[int, ...] = STAGES[1:5]
TERMINAL_PHASES = frozenset(
    {
        orchestrator_pb2.ITERATION_PHASE_COMPLETED,
        orchestrator_pb2.ITERATION_PHASE_FAILED,
        orchestrator_pb2.ITERATION_PHASE_CANCELLED,
    }
)

LIMITS = {"num_problems": 10_000, "tests_per_problem": 1_000, "samples_per_problem": 1_024}
DEFAULT_RHO = 0.8
DEFAULT_TAU = 2
DEFAULT_TEMPERATURE = 0.8
DEFAULT_MAX_TOKENS = 256
DEFAULT_EPOCHS = 1


def stage_name(stage: int) -> str:
    return orchestrator_pb2.Stage.Name(stage).removeprefix("STAGE_").lower()


def phase_name(phase: int) -> str:
    return orchestrator_pb2.IterationPhase.Name(phase).removeprefix("ITERATION_PHASE_").lower()


def now_ms() -> int:
    return int(time.time() * 1000)


def new_iteration_id() -> str:
    """Sortable by creation time, unique, and valid as a NATS subject token and KV key."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


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
    if not 0 <= spec.max_tokens <= 4096:
        raise InvalidArgument(f"spec.max_tokens: must be in [0, 4096], got {spec.max_tokens}")
    if not 0 <= spec.train_epochs <= 100:
        raise InvalidArgument(f"spec.train_epochs: must be in [0, 100], got {spec.train_epochs}")
    if spec.signature_mode not in common_pb2.SignatureMode.values():
        raise InvalidArgument(f"spec.signature_mode: unknown value {spec.signature_mode}")
    if spec.model:
        model = Path(spec.model)
        if not (model / "config.json").is_file():
            raise InvalidArgument(
                f"spec.model: no Hugging Face model directory (with config.json) at {spec.model}"
            )
        if served_model and model.resolve() != Path(served_model).resolve():
            raise InvalidArgument(
                f"spec.model: the stack serves {served_model}; "
                f"start it with --model {spec.model} to use another model"
            )
    filled = orchestrator_pb2.IterationSpec()
    filled.CopyFrom(spec)
    filled.rho = spec.rho or DEFAULT_RHO
    filled.tau = spec.tau or DEFAULT_TAU
    filled.temperature = spec.temperature or DEFAULT_TEMPERATURE
    filled.max_tokens = spec.max_tokens or DEFAULT_MAX_TOKENS
    filled.train_epochs = spec.train_epochs or DEFAULT_EPOCHS
    filled.signature_mode = spec.signature_mode or common_pb2.SIGNATURE_MODE_OUTPUT
    filled.model = served_model or spec.model
    return filled


def new_iteration(
    iteration_id: str, spec: orchestrator_pb2.IterationSpec, model_version: int
) -> orchestrator_pb2.Iteration:
    it = orchestrator_pb2.Iteration(
        iteration_id=iteration_id,
        spec=spec,
        phase=orchestrator_pb2.ITERATION_PHASE_RUNNING,
        stage=orchestrator_pb2.STAGE_PROBLEMS,
        model_version_in=model_version,
        created_unix_ms=now_ms(),
    )
    for stage in STAGES:
        it.stages.add(stage=stage)
    stats(it, orchestrator_pb2.STAGE_PROBLEMS).total = 1
    stats(it, orchestrator_pb2.STAGE_PROBLEMS).started_unix_ms = it.created_unix_ms
    return it


def stats(it: orchestrator_pb2.Iteration, stage: int) -> orchestrator_pb2.StageStats:
    return it.stages[STAGES.index(stage)]


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


def fail_problem_from(it: orchestrator_pb2.Iteration, stage: int) -> None:
    """A problem failed at `stage`: it counts as failed there and in every later problem stage."""
    for later in PROBLEM_STAGES[PROBLEM_STAGES.index(stage) :]:
        mark_progress(it, later, failed=1)


def next_problem_stage(stage_done: int) -> int | None:
    """The stage a problem goes to after finishing `stage_done` (None after clustering)."""
    if stage_done == orchestrator_pb2.STAGE_PROBLEMS:
        return orchestrator_pb2.STAGE_TESTS
    index = PROBLEM_STAGES.index(stage_done)
    return PROBLEM_STAGES[index + 1] if index + 1 < len(PROBLEM_STAGES) else None


def problem_finished(ps: orchestrator_pb2.ProblemState) -> bool:
    return bool(ps.error) or ps.stage_done == orchestrator_pb2.STAGE_CLUSTERING


def current_stage(it: orchestrator_pb2.Iteration) -> int:
    """The earliest stage with unfinished work (what a progress display highlights)."""
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
