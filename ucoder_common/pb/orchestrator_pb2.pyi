from ucoder_common.pb import common_pb2 as _common_pb2
from ucoder_common.pb import problemgen_pb2 as _problemgen_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_UNSPECIFIED: _ClassVar[Stage]
    STAGE_PROBLEMS: _ClassVar[Stage]
    STAGE_TESTS: _ClassVar[Stage]
    STAGE_SAMPLING: _ClassVar[Stage]
    STAGE_EXECUTION: _ClassVar[Stage]
    STAGE_CLUSTERING: _ClassVar[Stage]
    STAGE_TRAINING: _ClassVar[Stage]
    STAGE_EVALUATION: _ClassVar[Stage]

class IterationPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ITERATION_PHASE_UNSPECIFIED: _ClassVar[IterationPhase]
    ITERATION_PHASE_RUNNING: _ClassVar[IterationPhase]
    ITERATION_PHASE_COMPLETED: _ClassVar[IterationPhase]
    ITERATION_PHASE_FAILED: _ClassVar[IterationPhase]
    ITERATION_PHASE_CANCELLED: _ClassVar[IterationPhase]
STAGE_UNSPECIFIED: Stage
STAGE_PROBLEMS: Stage
STAGE_TESTS: Stage
STAGE_SAMPLING: Stage
STAGE_EXECUTION: Stage
STAGE_CLUSTERING: Stage
STAGE_TRAINING: Stage
STAGE_EVALUATION: Stage
ITERATION_PHASE_UNSPECIFIED: IterationPhase
ITERATION_PHASE_RUNNING: IterationPhase
ITERATION_PHASE_COMPLETED: IterationPhase
ITERATION_PHASE_FAILED: IterationPhase
ITERATION_PHASE_CANCELLED: IterationPhase

class IterationSpec(_message.Message):
    __slots__ = ("num_problems", "tests_per_problem", "samples_per_problem", "rho", "tau", "temperature", "max_tokens", "signature_mode", "model", "train_epochs", "evaluation", "skip_evaluation", "iterations", "patience", "sampling", "selection_rule", "min_confidence", "skip_training")
    NUM_PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    TESTS_PER_PROBLEM_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_PROBLEM_FIELD_NUMBER: _ClassVar[int]
    RHO_FIELD_NUMBER: _ClassVar[int]
    TAU_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_MODE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TRAIN_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    SKIP_EVALUATION_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    PATIENCE_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    SELECTION_RULE_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SKIP_TRAINING_FIELD_NUMBER: _ClassVar[int]
    num_problems: int
    tests_per_problem: int
    samples_per_problem: int
    rho: float
    tau: int
    temperature: float
    max_tokens: int
    signature_mode: _common_pb2.SignatureMode
    model: str
    train_epochs: int
    evaluation: EvalSpec
    skip_evaluation: bool
    iterations: int
    patience: int
    sampling: _common_pb2.SamplingPolicy
    selection_rule: str
    min_confidence: float
    skip_training: bool
    def __init__(self, num_problems: _Optional[int] = ..., tests_per_problem: _Optional[int] = ..., samples_per_problem: _Optional[int] = ..., rho: _Optional[float] = ..., tau: _Optional[int] = ..., temperature: _Optional[float] = ..., max_tokens: _Optional[int] = ..., signature_mode: _Optional[_Union[_common_pb2.SignatureMode, str]] = ..., model: _Optional[str] = ..., train_epochs: _Optional[int] = ..., evaluation: _Optional[_Union[EvalSpec, _Mapping]] = ..., skip_evaluation: _Optional[bool] = ..., iterations: _Optional[int] = ..., patience: _Optional[int] = ..., sampling: _Optional[_Union[_common_pb2.SamplingPolicy, _Mapping]] = ..., selection_rule: _Optional[str] = ..., min_confidence: _Optional[float] = ..., skip_training: _Optional[bool] = ...) -> None: ...

class EvalSpec(_message.Message):
    __slots__ = ("problems", "samples", "temperature", "max_tokens", "ks")
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    KS_FIELD_NUMBER: _ClassVar[int]
    problems: int
    samples: int
    temperature: float
    max_tokens: int
    ks: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, problems: _Optional[int] = ..., samples: _Optional[int] = ..., temperature: _Optional[float] = ..., max_tokens: _Optional[int] = ..., ks: _Optional[_Iterable[int]] = ...) -> None: ...

class EvalResult(_message.Message):
    __slots__ = ("model_version", "pass_at_1", "pass_at_k", "num_problems", "num_samples", "seconds", "finished_unix_ms", "spec")
    class PassAtKEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: float
        def __init__(self, key: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PASS_AT_1_FIELD_NUMBER: _ClassVar[int]
    PASS_AT_K_FIELD_NUMBER: _ClassVar[int]
    NUM_PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    model_version: int
    pass_at_1: float
    pass_at_k: _containers.ScalarMap[int, float]
    num_problems: int
    num_samples: int
    seconds: float
    finished_unix_ms: int
    spec: EvalSpec
    def __init__(self, model_version: _Optional[int] = ..., pass_at_1: _Optional[float] = ..., pass_at_k: _Optional[_Mapping[int, float]] = ..., num_problems: _Optional[int] = ..., num_samples: _Optional[int] = ..., seconds: _Optional[float] = ..., finished_unix_ms: _Optional[int] = ..., spec: _Optional[_Union[EvalSpec, _Mapping]] = ...) -> None: ...

class ProblemState(_message.Message):
    __slots__ = ("problem", "stage_done", "error", "tests", "candidates", "results", "selection", "sampler_adapter", "rounds", "round_size", "sampling_reason", "p_change", "likely_invalid_tests", "tests_rejected", "tests_repaired", "tests_mutated", "failed_from")
    class TestsRejectedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class TestsRepairedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    STAGE_DONE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    SELECTION_FIELD_NUMBER: _ClassVar[int]
    SAMPLER_ADAPTER_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    ROUND_SIZE_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_REASON_FIELD_NUMBER: _ClassVar[int]
    P_CHANGE_FIELD_NUMBER: _ClassVar[int]
    LIKELY_INVALID_TESTS_FIELD_NUMBER: _ClassVar[int]
    TESTS_REJECTED_FIELD_NUMBER: _ClassVar[int]
    TESTS_REPAIRED_FIELD_NUMBER: _ClassVar[int]
    TESTS_MUTATED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FROM_FIELD_NUMBER: _ClassVar[int]
    problem: _common_pb2.Problem
    stage_done: Stage
    error: str
    tests: _containers.RepeatedCompositeFieldContainer[_common_pb2.TestCase]
    candidates: _containers.RepeatedCompositeFieldContainer[_common_pb2.Candidate]
    results: _containers.RepeatedCompositeFieldContainer[_common_pb2.CandidateResult]
    selection: _common_pb2.Selection
    sampler_adapter: str
    rounds: int
    round_size: int
    sampling_reason: str
    p_change: float
    likely_invalid_tests: _containers.RepeatedScalarFieldContainer[str]
    tests_rejected: _containers.ScalarMap[str, int]
    tests_repaired: _containers.ScalarMap[str, int]
    tests_mutated: int
    failed_from: Stage
    def __init__(self, problem: _Optional[_Union[_common_pb2.Problem, _Mapping]] = ..., stage_done: _Optional[_Union[Stage, str]] = ..., error: _Optional[str] = ..., tests: _Optional[_Iterable[_Union[_common_pb2.TestCase, _Mapping]]] = ..., candidates: _Optional[_Iterable[_Union[_common_pb2.Candidate, _Mapping]]] = ..., results: _Optional[_Iterable[_Union[_common_pb2.CandidateResult, _Mapping]]] = ..., selection: _Optional[_Union[_common_pb2.Selection, _Mapping]] = ..., sampler_adapter: _Optional[str] = ..., rounds: _Optional[int] = ..., round_size: _Optional[int] = ..., sampling_reason: _Optional[str] = ..., p_change: _Optional[float] = ..., likely_invalid_tests: _Optional[_Iterable[str]] = ..., tests_rejected: _Optional[_Mapping[str, int]] = ..., tests_repaired: _Optional[_Mapping[str, int]] = ..., tests_mutated: _Optional[int] = ..., failed_from: _Optional[_Union[Stage, str]] = ...) -> None: ...

class StageStats(_message.Message):
    __slots__ = ("stage", "done", "total", "failed", "started_unix_ms", "finished_unix_ms")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    stage: Stage
    done: int
    total: int
    failed: int
    started_unix_ms: int
    finished_unix_ms: int
    def __init__(self, stage: _Optional[_Union[Stage, str]] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., failed: _Optional[int] = ..., started_unix_ms: _Optional[int] = ..., finished_unix_ms: _Optional[int] = ...) -> None: ...

class Iteration(_message.Message):
    __slots__ = ("iteration_id", "spec", "phase", "stage", "model_version_in", "model_version_out", "stages", "created_unix_ms", "finished_unix_ms", "error", "problems", "problems_generated", "problems_rejected", "tests_kept", "candidates", "executions", "selected", "problem_ids", "eval_in", "eval_out", "run_id", "run_index", "next_iteration_id", "best_version", "best_pass_at_1", "stale_iterations", "run_decision", "tests_rejected", "tests_likely_invalid", "problem_diversity", "tests_mutated", "tests_repaired")
    class TestsRejectedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class TestsRepairedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_IN_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_OUT_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_GENERATED_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_REJECTED_FIELD_NUMBER: _ClassVar[int]
    TESTS_KEPT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_IDS_FIELD_NUMBER: _ClassVar[int]
    EVAL_IN_FIELD_NUMBER: _ClassVar[int]
    EVAL_OUT_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_INDEX_FIELD_NUMBER: _ClassVar[int]
    NEXT_ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    BEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    BEST_PASS_AT_1_FIELD_NUMBER: _ClassVar[int]
    STALE_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    RUN_DECISION_FIELD_NUMBER: _ClassVar[int]
    TESTS_REJECTED_FIELD_NUMBER: _ClassVar[int]
    TESTS_LIKELY_INVALID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_DIVERSITY_FIELD_NUMBER: _ClassVar[int]
    TESTS_MUTATED_FIELD_NUMBER: _ClassVar[int]
    TESTS_REPAIRED_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    spec: IterationSpec
    phase: IterationPhase
    stage: Stage
    model_version_in: int
    model_version_out: _common_pb2.ModelVersion
    stages: _containers.RepeatedCompositeFieldContainer[StageStats]
    created_unix_ms: int
    finished_unix_ms: int
    error: str
    problems: _containers.RepeatedCompositeFieldContainer[ProblemState]
    problems_generated: int
    problems_rejected: int
    tests_kept: int
    candidates: int
    executions: int
    selected: int
    problem_ids: _containers.RepeatedScalarFieldContainer[str]
    eval_in: EvalResult
    eval_out: EvalResult
    run_id: str
    run_index: int
    next_iteration_id: str
    best_version: int
    best_pass_at_1: float
    stale_iterations: int
    run_decision: str
    tests_rejected: _containers.ScalarMap[str, int]
    tests_likely_invalid: int
    problem_diversity: _problemgen_pb2.ProblemDiversity
    tests_mutated: int
    tests_repaired: _containers.ScalarMap[str, int]
    def __init__(self, iteration_id: _Optional[str] = ..., spec: _Optional[_Union[IterationSpec, _Mapping]] = ..., phase: _Optional[_Union[IterationPhase, str]] = ..., stage: _Optional[_Union[Stage, str]] = ..., model_version_in: _Optional[int] = ..., model_version_out: _Optional[_Union[_common_pb2.ModelVersion, _Mapping]] = ..., stages: _Optional[_Iterable[_Union[StageStats, _Mapping]]] = ..., created_unix_ms: _Optional[int] = ..., finished_unix_ms: _Optional[int] = ..., error: _Optional[str] = ..., problems: _Optional[_Iterable[_Union[ProblemState, _Mapping]]] = ..., problems_generated: _Optional[int] = ..., problems_rejected: _Optional[int] = ..., tests_kept: _Optional[int] = ..., candidates: _Optional[int] = ..., executions: _Optional[int] = ..., selected: _Optional[int] = ..., problem_ids: _Optional[_Iterable[str]] = ..., eval_in: _Optional[_Union[EvalResult, _Mapping]] = ..., eval_out: _Optional[_Union[EvalResult, _Mapping]] = ..., run_id: _Optional[str] = ..., run_index: _Optional[int] = ..., next_iteration_id: _Optional[str] = ..., best_version: _Optional[int] = ..., best_pass_at_1: _Optional[float] = ..., stale_iterations: _Optional[int] = ..., run_decision: _Optional[str] = ..., tests_rejected: _Optional[_Mapping[str, int]] = ..., tests_likely_invalid: _Optional[int] = ..., problem_diversity: _Optional[_Union[_problemgen_pb2.ProblemDiversity, _Mapping]] = ..., tests_mutated: _Optional[int] = ..., tests_repaired: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ProgressEvent(_message.Message):
    __slots__ = ("iteration_id", "unix_ms", "stage", "done", "total", "failed", "phase", "message")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    unix_ms: int
    stage: Stage
    done: int
    total: int
    failed: int
    phase: IterationPhase
    message: str
    def __init__(self, iteration_id: _Optional[str] = ..., unix_ms: _Optional[int] = ..., stage: _Optional[_Union[Stage, str]] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., failed: _Optional[int] = ..., phase: _Optional[_Union[IterationPhase, str]] = ..., message: _Optional[str] = ...) -> None: ...

class StartIterationRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: IterationSpec
    def __init__(self, spec: _Optional[_Union[IterationSpec, _Mapping]] = ...) -> None: ...

class GetIterationRequest(_message.Message):
    __slots__ = ("iteration_id", "include_problems")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    include_problems: bool
    def __init__(self, iteration_id: _Optional[str] = ..., include_problems: _Optional[bool] = ...) -> None: ...

class ListIterationsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListIterationsResponse(_message.Message):
    __slots__ = ("iterations",)
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    iterations: _containers.RepeatedCompositeFieldContainer[Iteration]
    def __init__(self, iterations: _Optional[_Iterable[_Union[Iteration, _Mapping]]] = ...) -> None: ...

class WatchIterationRequest(_message.Message):
    __slots__ = ("iteration_id",)
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    def __init__(self, iteration_id: _Optional[str] = ...) -> None: ...

class CancelIterationRequest(_message.Message):
    __slots__ = ("iteration_id",)
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    def __init__(self, iteration_id: _Optional[str] = ...) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("model_version", "spec")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    model_version: int
    spec: EvalSpec
    def __init__(self, model_version: _Optional[int] = ..., spec: _Optional[_Union[EvalSpec, _Mapping]] = ...) -> None: ...

class EvaluateProgress(_message.Message):
    __slots__ = ("model_version", "done", "total", "result")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    model_version: int
    done: int
    total: int
    result: EvalResult
    def __init__(self, model_version: _Optional[int] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., result: _Optional[_Union[EvalResult, _Mapping]] = ...) -> None: ...

class GetReportRequest(_message.Message):
    __slots__ = ("iteration_id",)
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    def __init__(self, iteration_id: _Optional[str] = ...) -> None: ...

class ReportWarning(_message.Message):
    __slots__ = ("code", "iteration_id", "iteration_ids", "message", "value", "threshold")
    CODE_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATION_IDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    code: str
    iteration_id: str
    iteration_ids: _containers.RepeatedScalarFieldContainer[str]
    message: str
    value: float
    threshold: float
    def __init__(self, code: _Optional[str] = ..., iteration_id: _Optional[str] = ..., iteration_ids: _Optional[_Iterable[str]] = ..., message: _Optional[str] = ..., value: _Optional[float] = ..., threshold: _Optional[float] = ...) -> None: ...

class IterationReport(_message.Message):
    __slots__ = ("iteration_id", "json", "markdown", "html", "objects", "warnings", "stored")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    MARKDOWN_FIELD_NUMBER: _ClassVar[int]
    HTML_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    json: str
    markdown: str
    html: str
    objects: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedCompositeFieldContainer[ReportWarning]
    stored: bool
    def __init__(self, iteration_id: _Optional[str] = ..., json: _Optional[str] = ..., markdown: _Optional[str] = ..., html: _Optional[str] = ..., objects: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[_Union[ReportWarning, _Mapping]]] = ..., stored: _Optional[bool] = ...) -> None: ...
