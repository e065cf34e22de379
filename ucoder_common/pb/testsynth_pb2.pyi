from ucoder_common.pb import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SynthesizeTestsRequest(_message.Message):
    __slots__ = ("iteration_id", "problem", "count", "model_version", "temperature", "max_tokens", "max_rounds")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    problem: _common_pb2.Problem
    count: int
    model_version: int
    temperature: float
    max_tokens: int
    max_rounds: int
    def __init__(self, iteration_id: _Optional[str] = ..., problem: _Optional[_Union[_common_pb2.Problem, _Mapping]] = ..., count: _Optional[int] = ..., model_version: _Optional[int] = ..., temperature: _Optional[float] = ..., max_tokens: _Optional[int] = ..., max_rounds: _Optional[int] = ...) -> None: ...

class SynthesizeTestsResponse(_message.Message):
    __slots__ = ("iteration_id", "problem_id", "tests", "generated", "rejected", "duplicates", "error", "rejected_by_reason", "guesses_dropped", "types_checked", "mutated", "repaired")
    class RejectedByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class GuessesDroppedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class RepairedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_ID_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REJECTED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    GUESSES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    TYPES_CHECKED_FIELD_NUMBER: _ClassVar[int]
    MUTATED_FIELD_NUMBER: _ClassVar[int]
    REPAIRED_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    problem_id: str
    tests: _containers.RepeatedCompositeFieldContainer[_common_pb2.TestCase]
    generated: int
    rejected: int
    duplicates: int
    error: str
    rejected_by_reason: _containers.ScalarMap[str, int]
    guesses_dropped: _containers.ScalarMap[str, int]
    types_checked: bool
    mutated: int
    repaired: _containers.ScalarMap[str, int]
    def __init__(self, iteration_id: _Optional[str] = ..., problem_id: _Optional[str] = ..., tests: _Optional[_Iterable[_Union[_common_pb2.TestCase, _Mapping]]] = ..., generated: _Optional[int] = ..., rejected: _Optional[int] = ..., duplicates: _Optional[int] = ..., error: _Optional[str] = ..., rejected_by_reason: _Optional[_Mapping[str, int]] = ..., guesses_dropped: _Optional[_Mapping[str, int]] = ..., types_checked: _Optional[bool] = ..., mutated: _Optional[int] = ..., repaired: _Optional[_Mapping[str, int]] = ...) -> None: ...
