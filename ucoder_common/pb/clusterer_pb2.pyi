from ucoder_common.pb import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClusterRequest(_message.Message):
    __slots__ = ("iteration_id", "problem_id", "candidates", "results", "rho", "tau", "signature_mode", "sampling", "budget", "round", "selection_rule", "min_confidence")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    RHO_FIELD_NUMBER: _ClassVar[int]
    TAU_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_MODE_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SELECTION_RULE_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    problem_id: str
    candidates: _containers.RepeatedCompositeFieldContainer[_common_pb2.Candidate]
    results: _containers.RepeatedCompositeFieldContainer[_common_pb2.CandidateResult]
    rho: float
    tau: int
    signature_mode: _common_pb2.SignatureMode
    sampling: _common_pb2.SamplingPolicy
    budget: int
    round: int
    selection_rule: str
    min_confidence: float
    def __init__(self, iteration_id: _Optional[str] = ..., problem_id: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[_common_pb2.Candidate, _Mapping]]] = ..., results: _Optional[_Iterable[_Union[_common_pb2.CandidateResult, _Mapping]]] = ..., rho: _Optional[float] = ..., tau: _Optional[int] = ..., signature_mode: _Optional[_Union[_common_pb2.SignatureMode, str]] = ..., sampling: _Optional[_Union[_common_pb2.SamplingPolicy, _Mapping]] = ..., budget: _Optional[int] = ..., round: _Optional[int] = ..., selection_rule: _Optional[str] = ..., min_confidence: _Optional[float] = ...) -> None: ...

class ClusterResponse(_message.Message):
    __slots__ = ("iteration_id", "problem_id", "selection", "error", "round", "sample_more", "next_round", "sampling_reason", "p_change")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_ID_FIELD_NUMBER: _ClassVar[int]
    SELECTION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_MORE_FIELD_NUMBER: _ClassVar[int]
    NEXT_ROUND_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_REASON_FIELD_NUMBER: _ClassVar[int]
    P_CHANGE_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    problem_id: str
    selection: _common_pb2.Selection
    error: str
    round: int
    sample_more: bool
    next_round: int
    sampling_reason: str
    p_change: float
    def __init__(self, iteration_id: _Optional[str] = ..., problem_id: _Optional[str] = ..., selection: _Optional[_Union[_common_pb2.Selection, _Mapping]] = ..., error: _Optional[str] = ..., round: _Optional[int] = ..., sample_more: _Optional[bool] = ..., next_round: _Optional[int] = ..., sampling_reason: _Optional[str] = ..., p_change: _Optional[float] = ...) -> None: ...
