"""What the trainer refuses before training (issue 15: a Train request with learning_rate inf
registered an all-NaN adapter as current; epochs 2^31-1 held the training thread for good)."""

from __future__ import annotations

import math

import pytest
import torch

from services.trainer.app import MAX_EPOCHS, TrainerConfig, check_train_request
from services.trainer.lora import non_finite_parameters
from ucoder_common.config import ConfigError
from ucoder_common.errors import InvalidArgument
from ucoder_common.pb import common_pb2, trainer_pb2


def request(**fields: object) -> trainer_pb2.TrainRequest:
    example = common_pb2.TrainExample(prompt="def f():\n", completion="    return 1\n")
    return trainer_pb2.TrainRequest(iteration_id="it-1", examples=[example], **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"learning_rate": math.inf}, "learning_rate"),
        ({"learning_rate": 1e308}, "learning_rate"),
        ({"learning_rate": math.nan}, "learning_rate"),
        ({"learning_rate": -1e-4}, "learning_rate"),
        ({"epochs": 2**31 - 1}, "epochs"),
        ({"epochs": -1}, "epochs"),
        ({"lora_rank": 100_000}, "lora_rank"),
        ({"max_length": 1}, "max_length"),
        ({"max_length": 7}, "max_length"),
        ({"max_length": 10**9}, "max_length"),
    ],
)
def test_out_of_range_settings_are_refused_naming_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument, match=rf"^{field}: must be"):
        check_train_request(request(**fields))


def test_defaults_and_sane_settings_pass() -> None:
    check_train_request(request())  # every setting 0: the trainer's own
    check_train_request(request(learning_rate=1e-3, epochs=MAX_EPOCHS, lora_rank=16, max_length=512))
    with pytest.raises(InvalidArgument, match=r"^examples: must not be empty"):
        check_train_request(trainer_pb2.TrainRequest(iteration_id="it-1"))
    blank = common_pb2.TrainExample(prompt="p", completion="  \n")
    with pytest.raises(InvalidArgument, match=r"^examples\[0\]\.completion"):
        check_train_request(trainer_pb2.TrainRequest(examples=[blank]))


def test_the_service_setting_is_bounded_too() -> None:
    for bad in (math.inf, math.nan, 0.0, 2.0):
        with pytest.raises(ConfigError, match="learning_rate"):
            TrainerConfig(learning_rate=bad).validate()
    TrainerConfig(learning_rate=5e-4).validate()


def test_non_finite_adapter_tensors_are_named() -> None:
    good = torch.ones(2, 2)
    named = [("a.lora_A", good), ("b.lora_B", torch.tensor([1.0, math.nan])), ("c", torch.tensor([math.inf]))]
    assert non_finite_parameters(named) == ["b.lora_B", "c"]
    assert non_finite_parameters([("a", good)]) == []
