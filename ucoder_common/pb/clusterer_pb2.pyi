from ucoder_common.pb import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClusterRequest(_message.Message):
    __slots__ = ("iteration_id", "problem_id", "candidates", "results", "rho", "tau", "signature_mode")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    RHO_FIELD_NUMBER: _ClassVar[int]
    TAU_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_MODE_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    problem_id: str
    candidates: _containers.RepeatedCompositeFieldContainer[_common_pb2.Candidate]
    results: _containers.RepeatedCompositeFieldContainer[_common_pb2.CandidateResult]
    rho: float
    tau: int
    signature_mode: _common_pb2.SignatureMode
    def __init__(self, iteration_id: _Optional[str] = ..., problem_id: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[_common_pb2.Candidate, _Mapping]]] = ..., results: _Optional[_Iterable[_Union[_common_pb2.CandidateResult, _Mapping]]] = ..., rho: _Optional[float] = ..., tau: _Optional[int] = ..., signature_mode: _Optional[_Union[_common_pb2.SignatureMode, str]] = ...) -> None: ...

class ClusterResponse(_message.Message):
    __slots__ = ("iteration_id", "problem_id", "selection", "error")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_ID_FIELD_NUMBER: _ClassVar[int]
    SELECTION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    problem_id: str
    selection: _common_pb2.Selection
    error: str
    def __init__(self, iteration_id: _Optional[str] = ..., problem_id: _Optional[str] = ..., selection: _Optional[_Union[_common_pb2.Selection, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...
