from ucoder_common.pb import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainRequest(_message.Message):
    __slots__ = ("iteration_id", "examples", "base_version", "epochs", "learning_rate", "lora_rank", "max_length")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    LORA_RANK_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    examples: _containers.RepeatedCompositeFieldContainer[_common_pb2.TrainExample]
    base_version: int
    epochs: int
    learning_rate: float
    lora_rank: int
    max_length: int
    def __init__(self, iteration_id: _Optional[str] = ..., examples: _Optional[_Iterable[_Union[_common_pb2.TrainExample, _Mapping]]] = ..., base_version: _Optional[int] = ..., epochs: _Optional[int] = ..., learning_rate: _Optional[float] = ..., lora_rank: _Optional[int] = ..., max_length: _Optional[int] = ...) -> None: ...

class TrainResponse(_message.Message):
    __slots__ = ("iteration_id", "model_version", "final_loss", "steps", "seconds", "error")
    ITERATION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FINAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    iteration_id: str
    model_version: _common_pb2.ModelVersion
    final_loss: float
    steps: int
    seconds: float
    error: str
    def __init__(self, iteration_id: _Optional[str] = ..., model_version: _Optional[_Union[_common_pb2.ModelVersion, _Mapping]] = ..., final_loss: _Optional[float] = ..., steps: _Optional[int] = ..., seconds: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class GetModelVersionRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...
