from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OutcomeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_KIND_UNSPECIFIED: _ClassVar[OutcomeKind]
    OUTCOME_KIND_RETURNED: _ClassVar[OutcomeKind]
    OUTCOME_KIND_RAISED: _ClassVar[OutcomeKind]
    OUTCOME_KIND_TIMEOUT: _ClassVar[OutcomeKind]
    OUTCOME_KIND_MEMORY: _ClassVar[OutcomeKind]
    OUTCOME_KIND_OUTPUT_LIMIT: _ClassVar[OutcomeKind]
    OUTCOME_KIND_COMPILE_ERROR: _ClassVar[OutcomeKind]
    OUTCOME_KIND_CRASHED: _ClassVar[OutcomeKind]

class SignatureMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNATURE_MODE_UNSPECIFIED: _ClassVar[SignatureMode]
    SIGNATURE_MODE_OUTPUT: _ClassVar[SignatureMode]
    SIGNATURE_MODE_PASS: _ClassVar[SignatureMode]
OUTCOME_KIND_UNSPECIFIED: OutcomeKind
OUTCOME_KIND_RETURNED: OutcomeKind
OUTCOME_KIND_RAISED: OutcomeKind
OUTCOME_KIND_TIMEOUT: OutcomeKind
OUTCOME_KIND_MEMORY: OutcomeKind
OUTCOME_KIND_OUTPUT_LIMIT: OutcomeKind
OUTCOME_KIND_COMPILE_ERROR: OutcomeKind
OUTCOME_KIND_CRASHED: OutcomeKind
SIGNATURE_MODE_UNSPECIFIED: SignatureMode
SIGNATURE_MODE_OUTPUT: SignatureMode
SIGNATURE_MODE_PASS: SignatureMode

class Problem(_message.Message):
    __slots__ = ("problem_id", "entry_point", "signature", "docstring", "prompt", "arity", "title", "description", "example_input", "example_output", "hint", "category", "quality_score", "difficulty", "rating_summary", "skeleton_from_model")
    PROBLEM_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_POINT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    DOCSTRING_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ARITY_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_INPUT_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    QUALITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    RATING_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SKELETON_FROM_MODEL_FIELD_NUMBER: _ClassVar[int]
    problem_id: str
    entry_point: str
    signature: str
    docstring: str
    prompt: str
    arity: int
    title: str
    description: str
    example_input: str
    example_output: str
    hint: str
    category: str
    quality_score: float
    difficulty: str
    rating_summary: str
    skeleton_from_model: bool
    def __init__(self, problem_id: _Optional[str] = ..., entry_point: _Optional[str] = ..., signature: _Optional[str] = ..., docstring: _Optional[str] = ..., prompt: _Optional[str] = ..., arity: _Optional[int] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., example_input: _Optional[str] = ..., example_output: _Optional[str] = ..., hint: _Optional[str] = ..., category: _Optional[str] = ..., quality_score: _Optional[float] = ..., difficulty: _Optional[str] = ..., rating_summary: _Optional[str] = ..., skeleton_from_model: _Optional[bool] = ...) -> None: ...

class TestCase(_message.Message):
    __slots__ = ("test_id", "args_literal", "expected_literal", "kind")
    TEST_ID_FIELD_NUMBER: _ClassVar[int]
    ARGS_LITERAL_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_LITERAL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    test_id: str
    args_literal: str
    expected_literal: str
    kind: str
    def __init__(self, test_id: _Optional[str] = ..., args_literal: _Optional[str] = ..., expected_literal: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("candidate_id", "code", "cumulative_logprob", "num_tokens")
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    CUMULATIVE_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    candidate_id: str
    code: str
    cumulative_logprob: float
    num_tokens: int
    def __init__(self, candidate_id: _Optional[str] = ..., code: _Optional[str] = ..., cumulative_logprob: _Optional[float] = ..., num_tokens: _Optional[int] = ...) -> None: ...

class TestOutcome(_message.Message):
    __slots__ = ("kind", "value_digest", "exception_type", "value_repr", "duration_ms", "passed")
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    EXCEPTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_REPR_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    kind: OutcomeKind
    value_digest: str
    exception_type: str
    value_repr: str
    duration_ms: float
    passed: bool
    def __init__(self, kind: _Optional[_Union[OutcomeKind, str]] = ..., value_digest: _Optional[str] = ..., exception_type: _Optional[str] = ..., value_repr: _Optional[str] = ..., duration_ms: _Optional[float] = ..., passed: _Optional[bool] = ...) -> None: ...

class CandidateResult(_message.Message):
    __slots__ = ("candidate_id", "outcomes")
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    candidate_id: str
    outcomes: _containers.RepeatedCompositeFieldContainer[TestOutcome]
    def __init__(self, candidate_id: _Optional[str] = ..., outcomes: _Optional[_Iterable[_Union[TestOutcome, _Mapping]]] = ...) -> None: ...

class Selection(_message.Message):
    __slots__ = ("problem_id", "selected", "candidate_id", "code", "cluster_size", "num_clusters", "eligible", "execution_success", "reason", "cluster_sizes", "confidence", "rule", "margin", "abstained")
    PROBLEM_ID_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    ELIGIBLE_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_SIZES_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    ABSTAINED_FIELD_NUMBER: _ClassVar[int]
    problem_id: str
    selected: bool
    candidate_id: str
    code: str
    cluster_size: int
    num_clusters: int
    eligible: int
    execution_success: float
    reason: str
    cluster_sizes: _containers.RepeatedScalarFieldContainer[int]
    confidence: float
    rule: str
    margin: int
    abstained: str
    def __init__(self, problem_id: _Optional[str] = ..., selected: _Optional[bool] = ..., candidate_id: _Optional[str] = ..., code: _Optional[str] = ..., cluster_size: _Optional[int] = ..., num_clusters: _Optional[int] = ..., eligible: _Optional[int] = ..., execution_success: _Optional[float] = ..., reason: _Optional[str] = ..., cluster_sizes: _Optional[_Iterable[int]] = ..., confidence: _Optional[float] = ..., rule: _Optional[str] = ..., margin: _Optional[int] = ..., abstained: _Optional[str] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("version", "base_model", "adapter_object", "iteration_id", "created_unix_ms", "train_examples", "train_loss")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_OBJECT_FIELD_NUMBER: _ClassVar[int]
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    version: int
    base_model: str
    adapter_object: str
    iteration_id: str
    created_unix_ms: int
    train_examples: int
    train_loss: float
    def __init__(self, version: _Optional[int] = ..., base_model: _Optional[str] = ..., adapter_object: _Optional[str] = ..., iteration_id: _Optional[str] = ..., created_unix_ms: _Optional[int] = ..., train_examples: _Optional[int] = ..., train_loss: _Optional[float] = ...) -> None: ...

class SamplingPolicy(_message.Message):
    __slots__ = ("mode", "round_size", "risk")
    MODE_FIELD_NUMBER: _ClassVar[int]
    ROUND_SIZE_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    mode: str
    round_size: int
    risk: float
    def __init__(self, mode: _Optional[str] = ..., round_size: _Optional[int] = ..., risk: _Optional[float] = ...) -> None: ...

class TrainExample(_message.Message):
    __slots__ = ("problem_id", "prompt", "completion")
    PROBLEM_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    problem_id: str
    prompt: str
    completion: str
    def __init__(self, problem_id: _Optional[str] = ..., prompt: _Optional[str] = ..., completion: _Optional[str] = ...) -> None: ...
