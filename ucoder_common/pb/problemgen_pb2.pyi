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
    __slots__ = ("iteration_id", "problems", "generated", "rejected_parse", "rejected_compile", "duplicates", "error")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_PARSE_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COMPILE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    problems: _containers.RepeatedCompositeFieldContainer[_common_pb2.Problem]
    generated: int
    rejected_parse: int
    rejected_compile: int
    duplicates: int
    error: str
    def __init__(self, iteration_id: _Optional[str] = ..., problems: _Optional[_Iterable[_Union[_common_pb2.Problem, _Mapping]]] = ..., generated: _Optional[int] = ..., rejected_parse: _Optional[int] = ..., rejected_compile: _Optional[int] = ..., duplicates: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...
