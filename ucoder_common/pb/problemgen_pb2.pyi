from ucoder_common.pb import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerateProblemsRequest(_message.Message):
    __slots__ = ("iteration_id", "count", "model_version", "temperature", "max_tokens", "max_rounds")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    count: int
    model_version: int
    temperature: float
    max_tokens: int
    max_rounds: int
    def __init__(self, iteration_id: _Optional[str] = ..., count: _Optional[int] = ..., model_version: _Optional[int] = ..., temperature: _Optional[float] = ..., max_tokens: _Optional[int] = ..., max_rounds: _Optional[int] = ...) -> None: ...

class GenerateProblemsResponse(_message.Message):
    __slots__ = ("iteration_id", "problems", "generated", "rejected_parse", "rejected_compile", "duplicates", "error", "rejected_quality", "unrated", "near_duplicates", "skeletons_from_model", "skeletons_fallback", "categories", "categories_proposed", "steered_rounds", "diversity")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_PARSE_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COMPILE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REJECTED_QUALITY_FIELD_NUMBER: _ClassVar[int]
    UNRATED_FIELD_NUMBER: _ClassVar[int]
    NEAR_DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    SKELETONS_FROM_MODEL_FIELD_NUMBER: _ClassVar[int]
    SKELETONS_FALLBACK_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_PROPOSED_FIELD_NUMBER: _ClassVar[int]
    STEERED_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    DIVERSITY_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    problems: _containers.RepeatedCompositeFieldContainer[_common_pb2.Problem]
    generated: int
    rejected_parse: int
    rejected_compile: int
    duplicates: int
    error: str
    rejected_quality: int
    unrated: int
    near_duplicates: int
    skeletons_from_model: int
    skeletons_fallback: int
    categories: _containers.RepeatedScalarFieldContainer[str]
    categories_proposed: int
    steered_rounds: int
    diversity: ProblemDiversity
    def __init__(self, iteration_id: _Optional[str] = ..., problems: _Optional[_Iterable[_Union[_common_pb2.Problem, _Mapping]]] = ..., generated: _Optional[int] = ..., rejected_parse: _Optional[int] = ..., rejected_compile: _Optional[int] = ..., duplicates: _Optional[int] = ..., error: _Optional[str] = ..., rejected_quality: _Optional[int] = ..., unrated: _Optional[int] = ..., near_duplicates: _Optional[int] = ..., skeletons_from_model: _Optional[int] = ..., skeletons_fallback: _Optional[int] = ..., categories: _Optional[_Iterable[str]] = ..., categories_proposed: _Optional[int] = ..., steered_rounds: _Optional[int] = ..., diversity: _Optional[_Union[ProblemDiversity, _Mapping]] = ...) -> None: ...

class ProblemDiversity(_message.Message):
    __slots__ = ("problems", "mean_lexical_entropy", "distinct_1", "distinct_2", "category_coverage", "category_entropy", "max_category_share", "pool_size", "category_counts")
    class CategoryCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    MEAN_LEXICAL_ENTROPY_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_1_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_2_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_COVERAGE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_ENTROPY_FIELD_NUMBER: _ClassVar[int]
    MAX_CATEGORY_SHARE_FIELD_NUMBER: _ClassVar[int]
    POOL_SIZE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_COUNTS_FIELD_NUMBER: _ClassVar[int]
    problems: int
    mean_lexical_entropy: float
    distinct_1: float
    distinct_2: float
    category_coverage: float
    category_entropy: float
    max_category_share: float
    pool_size: int
    category_counts: _containers.ScalarMap[str, int]
    def __init__(self, problems: _Optional[int] = ..., mean_lexical_entropy: _Optional[float] = ..., distinct_1: _Optional[float] = ..., distinct_2: _Optional[float] = ..., category_coverage: _Optional[float] = ..., category_entropy: _Optional[float] = ..., max_category_share: _Optional[float] = ..., pool_size: _Optional[int] = ..., category_counts: _Optional[_Mapping[str, int]] = ...) -> None: ...
