"""The session's stack started on an empty model cache (conftest.model_cache): the sampler and
the trainer built the default model at the same moment. Both serve, and the cache holds one
complete model and nothing a builder left half-done."""

from __future__ import annotations

from pathlib import Path

from ucoder_common.localstack import StackInfo, StackPaths, health
from ucoder_common.models import DEFAULT_MODEL_NAME


def test_sampler_and_trainer_built_the_model_once_and_serve(
    stack: tuple[StackPaths, StackInfo], model_cache: Path
) -> None:
    _, info = stack
    for name in ("sampler", "trainer"):
        assert health(info.address(name), timeout_s=10) == "SERVING", name
    models = model_cache / "models"
    assert sorted(p.name for p in models.iterdir() if not p.name.startswith(".")) == [DEFAULT_MODEL_NAME]
    model = models / DEFAULT_MODEL_NAME
    assert (model / "config.json").is_file() and any(model.glob("*.safetensors"))
    # A builder's temp dir is .<name>-XXXX beside the model (the lock file .<name>.lock stays).
    leftovers = [p.name for p in models.iterdir() if p.name.startswith(f".{DEFAULT_MODEL_NAME}-")]
    assert leftovers == []
