"""Sampler service: the only holder of the serving model (vLLM), with per-version LoRA adapters.

Serves raw generations (gRPC Generate, and NATS request/reply for problemgen and
testsynth) and candidate solutions (gRPC SampleCandidates, and the `sampler` work queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.sampler import core
from services.sampler.adapters import AdapterCache
from services.sampler.engine import Completion, EngineConfig, SamplerEngine
from services.sampler.metrics import IN_FLIGHT, REQUEST_SECONDS, REQUESTS, SAMPLES, TOKENS
from ucoder_common import models, registry, subjects
from ucoder_common.bus import Bus, stage_worker
from ucoder_common.config import ConfigError, ServiceConfig, setting
from ucoder_common.errors import FailedPrecondition, InvalidArgument, Unavailable, rpc
from ucoder_common.pb import common_pb2, sampler_pb2, sampler_pb2_grpc
from ucoder_common.service import GrpcBinding, ServiceParts
from ucoder_common.validation import MAX_COMPLETION_TOKENS

log = logging.getLogger(__name__)

MAX_N = 1024
MAX_TOKENS = MAX_COMPLETION_TOKENS


@dataclass
class SamplerConfig(ServiceConfig):
    """Serves the model: generations and candidate solutions."""

    model: str = setting("", "Base model directory (Hugging Face format); empty = the default Gemma 3 270M.")
    max_model_len: int = setting(2048, "Longest prompt + completion in tokens.")
    gpu_memory_utilization: float = setting(
        0.25, "Share of GPU memory (on CPU: of host memory) vLLM may reserve."
    )
    max_lora_rank: int = setting(16, "Largest LoRA rank an adapter may have.")
    max_loras: int = setting(4, "Adapters vLLM keeps loaded in the engine (least recently used swapped out).")
    adapter_cache_dir: str = setting("", "Where downloaded adapters are kept; empty = <cache>/adapters.")
    adapter_cache_size: int = setting(
        8, "Adapters kept on local disk; beyond it the least recently used one not in use is deleted."
    )
    max_num_seqs: int = setting(256, "Sequences vLLM batches at once (a request with n samples counts n).")
    enable_prefix_caching: bool = setting(True, "Reuse the KV cache of prompt prefixes seen before.")
    engine_metrics: bool = setting(True, "Export vLLM's scheduler stats (queue, KV cache, prefix hits).")
    concurrency: int = setting(4, "Sampling jobs handled at once (vLLM batches them together).")

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ConfigError(f"gpu_memory_utilization: must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.max_model_len < 128:
            raise ConfigError(f"max_model_len: must be >= 128, got {self.max_model_len}")
        if self.concurrency < 1:
            raise ConfigError(f"concurrency: must be >= 1, got {self.concurrency}")
        if self.adapter_cache_size < 1:
            raise ConfigError(f"adapter_cache_size: must be >= 1, got {self.adapter_cache_size}")
        if self.max_loras < 1:
            raise ConfigError(f"max_loras: must be >= 1, got {self.max_loras}")
        if self.max_num_seqs < 1:
            raise ConfigError(f"max_num_seqs: must be >= 1, got {self.max_num_seqs}")

    def engine_config(self, model_dir: Path) -> EngineConfig:
        """The vLLM engine settings of this sampler (bench.sampler builds its offline LLM from them)."""
        return EngineConfig(
            model=str(model_dir),
            max_model_len=self.max_model_len,
            gpu_memory_utilization=self.gpu_memory_utilization,
            max_lora_rank=self.max_lora_rank,
            max_loras=self.max_loras,
            max_num_seqs=self.max_num_seqs,
            enable_prefix_caching=self.enable_prefix_caching,
            stats=self.engine_metrics,
        )


class Sampler:
    def __init__(self, cfg: SamplerConfig, bus: Bus) -> None:
        self.cfg = cfg
        self.bus = bus
        self.engine: SamplerEngine | None = None
        self.model_dir: Path | None = None
        self.adapter_root = (
            Path(cfg.adapter_cache_dir) if cfg.adapter_cache_dir else models.cache_dir() / "adapters"
        )
        self.adapters = AdapterCache(self.adapter_root, cfg.adapter_cache_size)
        self._starting: SamplerEngine | None = None
        self._answering: set[asyncio.Task[None]] = set()
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self.model_dir = await asyncio.to_thread(models.resolve_model, self.cfg.model)
        engine = SamplerEngine(self.cfg.engine_config(self.model_dir))
        self._starting = engine  # closed on shutdown even while it loads
        await engine.start()
        self.engine = engine
        log.info(
            "model loaded",
            extra={"model": str(self.model_dir), "prefix_caching": engine.prefix_caching},
        )

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
        if self._answering:
            await asyncio.wait(self._answering, timeout=self.cfg.shutdown_grace_s)
        engine = self.engine or self._starting
        if engine is not None:
            await engine.close()

    @contextlib.asynccontextmanager
    async def _adapter(self, version: int) -> AsyncIterator[tuple[str, int, str] | None]:
        """The LoRA of a registry version, kept on disk while the block runs: None for version 0."""
        if version == 0:
            yield None
            return
        entry = await registry.get_version(self.bus, version)
        if entry is None:
            raise FailedPrecondition(f"model_version: version {version} is not registered")
        if self.model_dir is not None and entry.base_model and Path(entry.base_model) != self.model_dir:
            raise FailedPrecondition(
                f"model_version: version {version} adapts {entry.base_model}, "
                f"but this sampler serves {self.model_dir}"
            )
        async with self.adapters.use(
            version, lambda: registry.fetch_adapter(self.bus, entry, self.adapter_root)
        ) as path:
            yield registry.adapter_name(version), version, str(path)

    async def sample(
        self,
        prompt: str,
        n: int,
        temperature: float,
        max_tokens: int,
        stop: list[str],
        version: int,
        kind: str,
    ) -> tuple[list[Completion], str]:
        if self.engine is None:
            raise Unavailable("the model is still loading")
        if not prompt:
            raise InvalidArgument("prompt: must not be empty")
        if not 1 <= n <= MAX_N:
            raise InvalidArgument(f"n: must be in 1..{MAX_N}, got {n}")
        if not 0.0 <= temperature <= 2.0:
            raise InvalidArgument(f"temperature: must be in [0, 2], got {temperature}")
        if temperature == 0.0 and n > 1:
            # vLLM refuses it too ("n must be 1 when using greedy sampling"), as an internal error.
            raise InvalidArgument(f"n: must be 1 at temperature 0 (greedy sampling), got {n}")
        if not 1 <= max_tokens <= MAX_TOKENS:
            raise InvalidArgument(f"max_tokens: must be in 1..{MAX_TOKENS}, got {max_tokens}")
        if version < 0:
            raise InvalidArgument(f"model_version: must be >= 0, got {version}")
        engine = self.engine
        started = time.monotonic()
        IN_FLIGHT.inc()
        try:
            async with self._adapter(version) as adapter:
                completions = await engine.generate(prompt, n, temperature, max_tokens, stop, adapter)
        except Exception:
            REQUESTS.labels(kind=kind, outcome="error").inc()
            raise
        finally:
            IN_FLIGHT.dec()
        REQUEST_SECONDS.observe(time.monotonic() - started)
        REQUESTS.labels(kind=kind, outcome="ok").inc()
        SAMPLES.inc(len(completions))
        TOKENS.inc(sum(c.num_tokens for c in completions))
        return completions, adapter[0] if adapter else ""

    async def generate(self, request: sampler_pb2.GenerateRequest) -> sampler_pb2.GenerateResponse:
        completions, adapter = await self.sample(
            request.prompt,
            request.n,
            request.temperature,
            request.max_tokens,
            list(request.stop),
            request.model_version,
            "generate",
        )
        return sampler_pb2.GenerateResponse(
            completions=[
                sampler_pb2.Completion(
                    text=c.text, cumulative_logprob=c.cumulative_logprob, num_tokens=c.num_tokens
                )
                for c in completions
            ],
            model_version=request.model_version,
            adapter_name=adapter,
        )

    async def sample_candidates(
        self, request: sampler_pb2.SampleCandidatesRequest
    ) -> sampler_pb2.SampleCandidatesResponse:
        problem = request.problem
        if not problem.prompt:
            raise InvalidArgument("problem.prompt: must not be empty")
        if request.first_index < 0:
            raise InvalidArgument(f"first_index: must be >= 0, got {request.first_index}")
        completions, adapter = await self.sample(
            core.candidate_prompt(problem.prompt),
            request.n,
            request.temperature or 0.8,
            request.max_tokens or 256,
            core.CANDIDATE_STOP,
            request.model_version,
            "candidates",
        )
        return sampler_pb2.SampleCandidatesResponse(
            iteration_id=request.iteration_id,
            problem_id=problem.problem_id,
            candidates=[
                common_pb2.Candidate(
                    candidate_id=core.candidate_id(problem.problem_id, request.first_index + index),
                    code=core.assemble_candidate(problem.prompt, c.text),
                    cumulative_logprob=c.cumulative_logprob,
                    num_tokens=c.num_tokens,
                )
                for index, c in enumerate(completions)
            ],
            model_version=request.model_version,
            adapter_name=adapter,
        )

    async def subscribe(self) -> None:
        """Answer generation requests on NATS (queue group: replicas share them)."""

        async def answer(msg: Msg) -> None:
            try:
                request = sampler_pb2.GenerateRequest.FromString(msg.data)
                response = await self.generate(request)
            except Exception as exc:
                if not isinstance(exc, InvalidArgument | FailedPrecondition | Unavailable):
                    log.exception("generation failed")
                response = sampler_pb2.GenerateResponse(error=f"{type(exc).__name__}: {exc}")
            await msg.respond(response.SerializeToString())

        async def on_message(msg: Msg) -> None:
            # Answer concurrently so vLLM can batch requests from all callers.
            task = asyncio.create_task(answer(msg))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

        self._subscription = await self.bus.nc.subscribe(
            subjects.SAMPLER_GENERATE, queue="sampler", cb=on_message
        )


class SamplerServicer(sampler_pb2_grpc.SamplerServiceServicer):
    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    @rpc
    async def Generate(
        self, request: sampler_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> sampler_pb2.GenerateResponse:
        return await self.sampler.generate(request)

    @rpc
    async def SampleCandidates(
        self, request: sampler_pb2.SampleCandidatesRequest, context: grpc.aio.ServicerContext
    ) -> sampler_pb2.SampleCandidatesResponse:
        return await self.sampler.sample_candidates(request)


async def build(cfg: SamplerConfig, bus: Bus) -> ServiceParts:
    sampler = Sampler(cfg, bus)
    worker = stage_worker(
        bus,
        "sampler",
        sampler_pb2.SampleCandidatesRequest,
        sampler_pb2.SampleCandidatesResponse,
        sampler.sample_candidates,
        concurrency=cfg.concurrency,
        ack_wait_s=120.0,
    )
    binding = GrpcBinding(
        sampler_pb2_grpc.add_SamplerServiceServicer_to_server,
        SamplerServicer(sampler),
        "ucoder.v1.SamplerService",
    )

    async def ready() -> None:
        await sampler.start()
        await sampler.subscribe()

    return ServiceParts(bindings=[binding], workers=[worker], ready=ready, close=[sampler.close])
