from ucoder_common.pb import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerateRequest(_message.Message):
    __slots__ = ("prompt", "n", "temperature", "max_tokens", "stop", "model_version")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    n: int
    temperature: float
    max_tokens: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    model_version: int
    def __init__(self, prompt: _Optional[str] = ..., n: _Optional[int] = ..., temperature: _Optional[float] = ..., max_tokens: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., model_version: _Optional[int] = ...) -> None: ...

class Completion(_message.Message):
    __slots__ = ("text", "cumulative_logprob", "num_tokens")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CUMULATIVE_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    text: str
    cumulative_logprob: float
    num_tokens: int
    def __init__(self, text: _Optional[str] = ..., cumulative_logprob: _Optional[float] = ..., num_tokens: _Optional[int] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("completions", "model_version", "adapter_name", "error")
    COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    completions: _containers.RepeatedCompositeFieldContainer[Completion]
    model_version: int
    adapter_name: str
    error: str
    def __init__(self, completions: _Optional[_Iterable[_Union[Completion, _Mapping]]] = ..., model_version: _Optional[int] = ..., adapter_name: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class SampleCandidatesRequest(_message.Message):
    __slots__ = ("iteration_id", "problem", "n", "temperature", "max_tokens", "model_version", "first_index")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FIRST_INDEX_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    problem: _common_pb2.Problem
    n: int
    temperature: float
    max_tokens: int
    model_version: int
    first_index: int
    def __init__(self, iteration_id: _Optional[str] = ..., problem: _Optional[_Union[_common_pb2.Problem, _Mapping]] = ..., n: _Optional[int] = ..., temperature: _Optional[float] = ..., max_tokens: _Optional[int] = ..., model_version: _Optional[int] = ..., first_index: _Optional[int] = ...) -> None: ...

class SampleCandidatesResponse(_message.Message):
    __slots__ = ("iteration_id", "problem_id", "candidates", "model_version", "adapter_name", "error")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    problem_id: str
    candidates: _containers.RepeatedCompositeFieldContainer[_common_pb2.Candidate]
    model_version: int
    adapter_name: str
    error: str
    def __init__(self, iteration_id: _Optional[str] = ..., problem_id: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[_common_pb2.Candidate, _Mapping]]] = ..., model_version: _Optional[int] = ..., adapter_name: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...
