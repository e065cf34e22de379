"""Trainer service: LoRA fine-tuning on the selected pairs, and the model registry."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from nats.js.errors import ObjectNotFoundError
from prometheus_client import Counter, Gauge, Histogram

from services.trainer.lora import (
    CHECKPOINT_PREFIX,
    LoraTrainConfig,
    TrainingDiverged,
    checkpoint_step,
    train_lora,
)
from ucoder_common import models, registry
from ucoder_common.bus import Bus, stage_worker
from ucoder_common.config import ConfigError, ServiceConfig, setting
from ucoder_common.errors import InvalidArgument, NotFound, rpc
from ucoder_common.pb import common_pb2, trainer_pb2, trainer_pb2_grpc
from ucoder_common.service import GrpcBinding, ServiceParts
from ucoder_common.validation import check_id

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
RESUMED = Counter("ucoder_trainer_resumed", "Training runs resumed from a checkpoint instead of step 0.")
CHECKPOINTS = Counter(
    "ucoder_trainer_checkpoints", "Training checkpoints written, by where (local, store).", ["where"]
)
CHECKPOINT_STORE_ERRORS = Counter(
    "ucoder_trainer_checkpoint_store_errors",
    "Checkpoint copies to or from the Object Store that failed (training goes on without them).",
)

# Seconds one checkpoint copy to or from the Object Store may take before it is given up.
CHECKPOINT_STORE_TIMEOUT_S = 120.0
# A local checkpoint untouched this long belongs to a job that failed for good: removed.
STALE_CHECKPOINT_AGE_S = 7 * 24 * 3600.0


def checkpoint_key(iteration_id: str, base_version: int) -> str:
    """The job a checkpoint belongs to: the iteration and the model version its examples came from."""
    iteration = re.sub(r"[^A-Za-z0-9_-]", "_", iteration_id) or "no-iteration"
    return f"{iteration}-v{base_version}"


def _store_problem(message: str, key: str, exc: Exception) -> None:
    """A checkpoint copy to or from the Object Store failed: counted and logged, never fatal."""
    CHECKPOINT_STORE_ERRORS.inc()
    log.warning(message, extra={"key": key, "reason": f"{type(exc).__name__}: {exc}"})


def checkpoint_object_name(key: str) -> str:
    return f"checkpoints/{key}.tar"


# Upper bounds of a Train request's settings: beyond them a run is a mistake (or an attack) that
# would hold the only training thread for days or train garbage.
MAX_LEARNING_RATE = 1.0
MAX_EPOCHS = 100
MAX_LORA_RANK = 256
MIN_MAX_LENGTH = 32  # room for a prompt and a completion token after truncation
MAX_MAX_LENGTH = 32768


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
    device: str = setting("", "Training device: cpu, cuda or cuda:N; empty = cuda when available, else cpu.")
    checkpoint_every: int = setting(
        20, "Optimizer steps between checkpoints that a restarted trainer resumes from; 0 = none."
    )
    checkpoint_dir: str = setting("", "Where training checkpoints are kept; empty = <cache>/checkpoints.")
    checkpoint_store: bool = setting(
        True, "Also copy each checkpoint to the NATS Object Store, so a restart elsewhere resumes it."
    )

    def validate(self) -> None:
        super().validate()
        for name in ("lora_rank", "epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not re.fullmatch(r"|cpu|cuda(:[0-9]+)?", self.device):
            raise ConfigError(f"device: must be cpu, cuda or cuda:N, got {self.device!r}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every: must be >= 0, got {self.checkpoint_every}")
        if not math.isfinite(self.learning_rate) or not 0 < self.learning_rate <= MAX_LEARNING_RATE:
            raise ConfigError(
                f"learning_rate: must be in (0, {MAX_LEARNING_RATE:g}], got {self.learning_rate}"
            )


def check_train_request(request: trainer_pb2.TrainRequest) -> None:
    """Raise InvalidArgument naming the first field of ``request`` out of range (0 = the default)."""
    check_id("iteration_id", request.iteration_id, optional=True)
    if not request.examples:
        raise InvalidArgument("examples: must not be empty")
    for index, example in enumerate(request.examples):
        if not example.completion.strip():
            raise InvalidArgument(f"examples[{index}].completion: must not be empty")
    lr = request.learning_rate
    if not math.isfinite(lr) or not 0 <= lr <= MAX_LEARNING_RATE:
        raise InvalidArgument(
            f"learning_rate: must be a finite number in [0, {MAX_LEARNING_RATE:g}] "
            f"(0 = the trainer's), got {lr!r}"
        )
    for name, limit in (("epochs", MAX_EPOCHS), ("lora_rank", MAX_LORA_RANK)):
        value = getattr(request, name)
        if not 0 <= value <= limit:
            raise InvalidArgument(f"{name}: must be in 0..{limit} (0 = the trainer's), got {value}")
    if request.max_length and not MIN_MAX_LENGTH <= request.max_length <= MAX_MAX_LENGTH:
        raise InvalidArgument(
            f"max_length: must be 0 (the trainer's) or in {MIN_MAX_LENGTH}..{MAX_MAX_LENGTH}, "
            f"got {request.max_length}"
        )


class Trainer:
    def __init__(self, cfg: TrainerConfig, bus: Bus) -> None:
        self.cfg = cfg
        self.bus = bus
        self.model_dir: Path | None = None
        self.checkpoint_root = (
            Path(cfg.checkpoint_dir).expanduser()
            if cfg.checkpoint_dir
            else models.cache_dir() / "checkpoints"
        )
        self._lock = asyncio.Lock()  # one training run at a time per process

    async def start(self) -> None:
        self.model_dir = await asyncio.to_thread(models.resolve_model, self.cfg.model)
        current = await registry.current_version(self.bus)
        MODEL_VERSION.set(current.version if current else 0)

    async def train(self, request: trainer_pb2.TrainRequest) -> trainer_pb2.TrainResponse:
        check_train_request(request)
        assert self.model_dir is not None, "start() not called"
        async with self._lock:
            key = checkpoint_key(request.iteration_id, request.base_version)
            job_dir = self.checkpoint_root / key
            current = await registry.current_version(self.bus)
            if current is not None and request.iteration_id and current.iteration_id == request.iteration_id:
                # A redelivered job whose adapter was already registered: answer with it (and drop
                # the checkpoints, in case the first delivery died between registering and that).
                await self._drop_checkpoints(key, job_dir)
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
                checkpoint_every=self.cfg.checkpoint_every,
                device=self.cfg.device,
            )
            pairs = [(e.prompt, e.completion) for e in request.examples]

            def on_step(step: int, total: int, loss: float) -> None:
                STEPS.inc()
                LOSS.set(loss)

            loop = asyncio.get_running_loop()

            def on_checkpoint(path: Path, step: int) -> None:
                # Runs in the training thread: the copy is made before the next checkpoint replaces this one.
                CHECKPOINTS.labels(where="local").inc()
                if self.cfg.checkpoint_store:
                    self._copy_checkpoint_to_store(loop, key, path)

            await asyncio.to_thread(self._prune_stale_checkpoints, key)
            if self.cfg.checkpoint_store:
                await self._fetch_checkpoint_from_store(key, job_dir)
            out_dir = Path(tempfile.mkdtemp(prefix="ucoder-adapter-"))
            started = time.monotonic()
            try:
                try:
                    report = await asyncio.to_thread(
                        train_lora, self.model_dir, pairs, out_dir, cfg, on_step, job_dir, on_checkpoint
                    )
                except TrainingDiverged as exc:
                    # Deterministic: a retry would diverge again, and its checkpoints hold NaNs.
                    await self._drop_checkpoints(key, job_dir)
                    raise InvalidArgument(f"learning_rate: {exc}; no adapter registered") from exc
                if report.resumed_from_step:
                    RESUMED.inc()
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
            # Only now: a crash before registering must find the checkpoints to resume from.
            await self._drop_checkpoints(key, job_dir)
            RUNS.labels(outcome="ok").inc()
            EXAMPLES.inc(report.examples)
            RUN_SECONDS.observe(time.monotonic() - started)
            MODEL_VERSION.set(entry.version)
            log.info(
                "adapter registered",
                extra={
                    "version": entry.version,
                    "examples": report.examples,
                    "loss": report.final_loss,
                    "resumed_from_step": report.resumed_from_step,
                },
            )
            return trainer_pb2.TrainResponse(
                iteration_id=request.iteration_id,
                model_version=entry,
                final_loss=report.final_loss,
                steps=report.steps,
                seconds=report.seconds,
            )

    def _copy_checkpoint_to_store(self, loop: asyncio.AbstractEventLoop, key: str, path: Path) -> None:
        """Upload a checkpoint from the training thread; a failure only costs the remote copy."""
        future: concurrent.futures.Future[Any] | None = None
        try:
            data = registry.pack_dir(path)
            upload = asyncio.wait_for(
                self.bus.objects.put(checkpoint_object_name(key), data), CHECKPOINT_STORE_TIMEOUT_S
            )
            future = asyncio.run_coroutine_threadsafe(upload, loop)
            future.result(CHECKPOINT_STORE_TIMEOUT_S + 5)
            CHECKPOINTS.labels(where="store").inc()
        except Exception as exc:
            if future is not None:
                future.cancel()
            _store_problem("checkpoint not copied to the object store; the local copy remains", key, exc)

    async def _fetch_checkpoint_from_store(self, key: str, job_dir: Path) -> None:
        """Put the job's checkpoint from the Object Store beside the local ones (train_lora picks
        the newest valid one): after a restart on another machine it is the only copy."""
        try:
            result = await asyncio.wait_for(
                self.bus.objects.get(checkpoint_object_name(key)), CHECKPOINT_STORE_TIMEOUT_S
            )
        except ObjectNotFoundError:
            return
        except Exception as exc:
            _store_problem("checkpoint not fetched from the object store", key, exc)
            return
        await asyncio.to_thread(self._unpack_checkpoint, key, bytes(result.data or b""), job_dir)

    def _unpack_checkpoint(self, key: str, data: bytes, job_dir: Path) -> None:
        job_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=job_dir))
        try:
            registry.unpack_to(data, staging)
            step = checkpoint_step(staging)
            if step is None:
                raise ValueError("the archive has no readable trainer state")
            target = job_dir / f"{CHECKPOINT_PREFIX}{step:08d}"
            if not target.exists():  # else the local copy is the same checkpoint
                os.rename(staging, target)
        except Exception as exc:
            _store_problem("ignoring the object store's checkpoint", key, exc)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    async def _drop_checkpoints(self, key: str, job_dir: Path) -> None:
        """Remove a finished job's checkpoints, local and remote."""
        await asyncio.to_thread(shutil.rmtree, job_dir, True)
        try:
            await asyncio.wait_for(
                self.bus.objects.delete(checkpoint_object_name(key)), CHECKPOINT_STORE_TIMEOUT_S
            )
        except ObjectNotFoundError:
            pass
        except Exception as exc:
            _store_problem("checkpoint not removed from the object store", key, exc)

    def _prune_stale_checkpoints(self, key: str) -> None:
        """Remove the local checkpoints of jobs that failed for good (never finished, long untouched)."""
        if not self.checkpoint_root.is_dir():
            return
        now = time.time()
        for job_dir in self.checkpoint_root.iterdir():
            try:
                stale = job_dir.name != key and now - job_dir.stat().st_mtime > STALE_CHECKPOINT_AGE_S
            except OSError:
                continue
            if stale:
                log.info("removing a stale training checkpoint", extra={"path": str(job_dir)})
                shutil.rmtree(job_dir, ignore_errors=True)

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
