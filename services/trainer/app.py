"""Trainer service: LoRA fine-tuning on the selected pairs, and the model registry."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from prometheus_client import Counter, Gauge, Histogram

from services.trainer.lora import LoraTrainConfig, train_lora
from ucoder_common import models, registry
from ucoder_common.bus import Bus, stage_worker
from ucoder_common.config import ConfigError, ServiceConfig, setting
from ucoder_common.errors import InvalidArgument, NotFound, rpc
from ucoder_common.pb import common_pb2, trainer_pb2, trainer_pb2_grpc
from ucoder_common.service import GrpcBinding, ServiceParts

log = logging.getLogger(__name__)

RUNS = Counter("ucoder_trainer_runs", "Training runs, by outcome.", ["outcome"])
STEPS = Counter("ucoder_trainer_steps", "Optimizer steps taken.")
EXAMPLES = Counter("ucoder_trainer_examples", "Examples trained on (per run, not per epoch).")
LOSS = Gauge("ucoder_trainer_loss", "Training loss of the latest optimizer step.")
RUN_SECONDS = Histogram(
    "ucoder_trainer_run_duration_seconds",
    "Wall time of one training run.",
    buckets=(10, 30, 60, 120, 300, 600, 1200, 3600, 7200),
)
MODEL_VERSION = Gauge("ucoder_trainer_model_version", "The current model version (0 = base).")


@dataclass
class TrainerConfig(ServiceConfig):
    """Fine-tunes LoRA adapters on consensus solutions and registers them as model versions."""

    model: str = setting("", "Base model directory (Hugging Face format); empty = the default Gemma 3 270M.")
    lora_rank: int = setting(8, "LoRA rank, when the request sets none.")
    learning_rate: float = setting(
        5e-4, "Peak learning rate (AdamW, cosine decay), when the request sets none."
    )
    epochs: int = setting(1, "Epochs over the selected pairs, when the request sets none.")
    batch_size: int = setting(4, "Examples per optimizer step.")
    max_length: int = setting(512, "Longest prompt + completion in tokens, when the request sets none.")

    def validate(self) -> None:
        super().validate()
        for name in ("lora_rank", "epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate: must be > 0, got {self.learning_rate}")


class Trainer:
    def __init__(self, cfg: TrainerConfig, bus: Bus) -> None:
        self.cfg = cfg
        self.bus = bus
        self.model_dir: Path | None = None
        self._lock = asyncio.Lock()  # one training run at a time per process

    async def start(self) -> None:
        self.model_dir = await asyncio.to_thread(models.resolve_model, self.cfg.model)
        current = await registry.current_version(self.bus)
        MODEL_VERSION.set(current.version if current else 0)

    async def train(self, request: trainer_pb2.TrainRequest) -> trainer_pb2.TrainResponse:
        if not request.examples:
            raise InvalidArgument("examples: must not be empty")
        for index, example in enumerate(request.examples):
            if not example.completion.strip():
                raise InvalidArgument(f"examples[{index}].completion: must not be empty")
        if request.epochs < 0 or request.lora_rank < 0 or request.max_length < 0 or request.learning_rate < 0:
            raise InvalidArgument("epochs, lora_rank, max_length and learning_rate: must be >= 0")
        assert self.model_dir is not None, "start() not called"
        async with self._lock:
            current = await registry.current_version(self.bus)
            if current is not None and request.iteration_id and current.iteration_id == request.iteration_id:
                # A redelivered job whose adapter was already registered: answer with it.
                return trainer_pb2.TrainResponse(
                    iteration_id=request.iteration_id, model_version=current, final_loss=current.train_loss
                )
            cfg = LoraTrainConfig(
                rank=request.lora_rank or self.cfg.lora_rank,
                alpha=2 * (request.lora_rank or self.cfg.lora_rank),
                learning_rate=request.learning_rate or self.cfg.learning_rate,
                epochs=request.epochs or self.cfg.epochs,
                batch_size=self.cfg.batch_size,
                max_length=request.max_length or self.cfg.max_length,
            )
            pairs = [(e.prompt, e.completion) for e in request.examples]

            def on_step(step: int, total: int, loss: float) -> None:
                STEPS.inc()
                LOSS.set(loss)

            out_dir = Path(tempfile.mkdtemp(prefix="ucoder-adapter-"))
            started = time.monotonic()
            try:
                report = await asyncio.to_thread(train_lora, self.model_dir, pairs, out_dir, cfg, on_step)
                entry = await registry.register_adapter(
                    self.bus,
                    out_dir,
                    base_model=str(self.model_dir),
                    iteration_id=request.iteration_id,
                    train_examples=report.examples,
                    train_loss=report.final_loss,
                )
            except Exception:
                RUNS.labels(outcome="error").inc()
                raise
            finally:
                shutil.rmtree(out_dir, ignore_errors=True)
            RUNS.labels(outcome="ok").inc()
            EXAMPLES.inc(report.examples)
            RUN_SECONDS.observe(time.monotonic() - started)
            MODEL_VERSION.set(entry.version)
            log.info(
                "adapter registered",
                extra={"version": entry.version, "examples": report.examples, "loss": report.final_loss},
            )
            return trainer_pb2.TrainResponse(
                iteration_id=request.iteration_id,
                model_version=entry,
                final_loss=report.final_loss,
                steps=report.steps,
                seconds=report.seconds,
            )

    async def get_version(self, version: int) -> common_pb2.ModelVersion:
        if version < -1:
            raise InvalidArgument(f"version: must be -1 (current) or >= 0, got {version}")
        if version == 0 or version == -1:
            entry = await registry.current_version(self.bus) if version == -1 else None
            return entry or common_pb2.ModelVersion(version=0, base_model=str(self.model_dir or ""))
        entry = await registry.get_version(self.bus, version)
        if entry is None:
            raise NotFound(f"version: no model version {version}")
        return entry


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer

    @rpc
    async def Train(
        self, request: trainer_pb2.TrainRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb2.TrainResponse:
        return await self.trainer.train(request)

    @rpc
    async def GetModelVersion(
        self, request: trainer_pb2.GetModelVersionRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.ModelVersion:
        return await self.trainer.get_version(request.version)


async def build(cfg: TrainerConfig, bus: Bus) -> ServiceParts:
    trainer = Trainer(cfg, bus)
    worker = stage_worker(
        bus,
        "trainer",
        trainer_pb2.TrainRequest,
        trainer_pb2.TrainResponse,
        trainer.train,
        concurrency=1,
        ack_wait_s=120.0,
        max_deliver=3,
    )
    binding = GrpcBinding(
        trainer_pb2_grpc.add_TrainerServiceServicer_to_server,
        TrainerServicer(trainer),
        "ucoder.v1.TrainerService",
    )
    return ServiceParts(bindings=[binding], workers=[worker], ready=trainer.start)
