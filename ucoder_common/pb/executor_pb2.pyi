from ucoder_common.pb import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecuteRequest(_message.Message):
    __slots__ = ("iteration_id", "problem_id", "entry_point", "candidates", "tests", "timeout_per_test_s", "memory_limit_mb")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_POINT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_PER_TEST_S_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_MB_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    problem_id: str
    entry_point: str
    candidates: _containers.RepeatedCompositeFieldContainer[_common_pb2.Candidate]
    tests: _containers.RepeatedCompositeFieldContainer[_common_pb2.TestCase]
    timeout_per_test_s: float
    memory_limit_mb: int
    def __init__(self, iteration_id: _Optional[str] = ..., problem_id: _Optional[str] = ..., entry_point: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[_common_pb2.Candidate, _Mapping]]] = ..., tests: _Optional[_Iterable[_Union[_common_pb2.TestCase, _Mapping]]] = ..., timeout_per_test_s: _Optional[float] = ..., memory_limit_mb: _Optional[int] = ...) -> None: ...

class ExecuteResponse(_message.Message):
    __slots__ = ("iteration_id", "problem_id", "results", "backend", "error")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    problem_id: str
    results: _containers.RepeatedCompositeFieldContainer[_common_pb2.CandidateResult]
    backend: str
    error: str
    def __init__(self, iteration_id: _Optional[str] = ..., problem_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[_common_pb2.CandidateResult, _Mapping]]] = ..., backend: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...
