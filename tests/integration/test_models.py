"""ucoder_common.models against the real default model."""

# Fixtures imported from tests.model_fixtures are shadowed by test parameters on purpose.
# ruff: noqa: F811
from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.model_fixtures import default_model, tiny_model  # noqa: F401
from ucoder_common.models import (
    DEFAULT_MODEL_NAME,
    ModelNotFoundError,
    cache_dir,
    ensure_default_model,
    resolve_model,
)


def test_cache_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("UCODER_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("UCODER_CACHE_DIR")
    assert cache_dir() == Path.home() / ".cache" / "ucoder"


def test_resolve_missing_dir(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ModelNotFoundError, match="nope"):
        resolve_model(str(missing))
    assert issubclass(ModelNotFoundError, ValueError)


def test_resolve_dir_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"config\.json"):
        resolve_model(str(tmp_path))


def test_resolve_existing_dir(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == tmp_path


@pytest.mark.slow
def test_ensure_default_model(default_model: Path) -> None:
    assert default_model.name == DEFAULT_MODEL_NAME
    assert (default_model / "config.json").is_file()
    assert list(default_model.glob("*.safetensors"))
    assert (default_model / "tokenizer.json").is_file()
    assert "Gemma Terms of Use" in (default_model / "NOTICE").read_text()
    assert "quantization_config" not in (default_model / "config.json").read_text()
    t0 = time.monotonic()
    again = ensure_default_model()
    assert again == default_model
    assert time.monotonic() - t0 < 1.0
    assert resolve_model("") == default_model


@pytest.mark.slow
def test_tiny_model_loads(tiny_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert model.config.num_hidden_layers == 2
    ids = tok("def f(x):", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], model.config.vocab_size)


@pytest.mark.slow
async def test_tiny_model_serves_in_vllm(tiny_model: Path) -> None:
    from services.sampler.engine import EngineConfig, SamplerEngine

    engine = SamplerEngine(EngineConfig(model=str(tiny_model), max_model_len=512, max_loras=1))
    await engine.start()
    try:
        outs = await engine.generate("def f(x):\n", n=2, temperature=0.8, max_tokens=8, stop=[])
    finally:
        await engine.close()
    assert len(outs) == 2
    assert all(0 < o.num_tokens <= 8 for o in outs)
