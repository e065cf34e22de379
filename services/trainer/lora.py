"""LoRA supervised fine-tuning with peft: a plain torch loop (AdamW, cosine schedule).

Examples are (prompt, completion) pairs. The prompt is tokenized exactly as the sampler sees
it (with BOS), the completion is appended (plus EOS), and only completion tokens carry loss:
prompt and padding positions get label -100. The adapter is saved with peft's
save_pretrained (adapter_config.json + adapter_model.safetensors), the layout that vLLM's
LoRARequest loads.

Checkpoints: with a checkpoint directory and `checkpoint_every` > 0, every N optimizer steps
the trainable (LoRA) weights, the optimizer and LR-scheduler state, the RNG states, the step,
the epoch and that epoch's data order are saved into `<checkpoint_dir>/step-<N>`. The step
directory is written under a temporary name and renamed, so it is either complete or absent.
A later call with the same directory and the same inputs (a redelivered job after a crash)
continues from the newest valid checkpoint and produces the adapter an uninterrupted run
would have produced. A checkpoint that fails to load is ignored with a warning and removed.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

IGNORE_INDEX = -100

CHECKPOINT_FORMAT = 1
CHECKPOINT_ADAPTER_FILE = "adapter.safetensors"  # the trainable (LoRA) parameters
CHECKPOINT_OPTIMIZER_FILE = "optimizer.pt"  # optimizer, LR scheduler and torch RNG states
CHECKPOINT_STATE_FILE = "trainer_state.json"  # step, epoch, data order, Python RNG, checksums
CHECKPOINT_PREFIX = "step-"


@dataclass(frozen=True)
class LoraTrainConfig:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    learning_rate: float = 2e-4
    epochs: int = 1
    batch_size: int = 4
    max_length: int = 512
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    seed: int = 0
    checkpoint_every: int = 0  # optimizer steps between checkpoints; 0 = none
    device: str = ""  # "" = cuda when available, else cpu


@dataclass(frozen=True)
class TrainReport:
    final_loss: float  # mean loss over the last epoch's steps
    steps: int  # of the whole run, including the steps done before a resume
    examples: int
    seconds: float  # of this call only
    losses: list[float]  # one per optimizer step, including the steps done before a resume
    resumed_from_step: int = 0  # 0 = started from scratch


def build_labels(input_ids: Sequence[int], prompt_len: int) -> list[int]:
    """Labels for causal-LM SFT: the first `prompt_len` positions are masked (-100)."""
    n = min(prompt_len, len(input_ids))
    return [IGNORE_INDEX] * n + list(input_ids[n:])


def encode_example(
    tokenizer: Any, prompt: str, completion: str, max_length: int
) -> tuple[list[int], list[int]]:
    """Token ids and labels of one example, truncated to max_length (from the right)."""
    prompt_ids: list[int] = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    completion_ids: list[int] = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        completion_ids = [*completion_ids, int(tokenizer.eos_token_id)]
    ids = (prompt_ids + completion_ids)[:max_length]
    return ids, build_labels(ids, len(prompt_ids))


def collate(batch: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch; padding is masked out of attention and loss."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (ids, labs) in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        labels[i, : len(labs)] = torch.tensor(labs, dtype=torch.long)
        attention[i, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def _loss(model: Any, batch: dict[str, Any]) -> Any:
    """Causal-LM loss over labelled positions only.

    Applies the output layer to labelled positions only: with Gemma's 262k vocabulary the full
    logits tensor would dominate memory.
    """
    import torch.nn.functional as F

    base = model.get_base_model()
    inner = getattr(base, "model", None)
    head = getattr(base, "lm_head", None)
    labels = batch["labels"][:, 1:]
    if inner is None or head is None:  # unusual architecture: fall back to the full forward
        return model(**batch).loss
    hidden = inner(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    keep = labels != IGNORE_INDEX
    logits = head(hidden[:, :-1][keep]).float()
    softcap = getattr(base.config, "final_logit_softcapping", None)
    if softcap:
        logits = (logits / softcap).tanh() * softcap
    return F.cross_entropy(logits, labels[keep])


class TrainingDiverged(ValueError):
    """Training ended with a non-finite loss or adapter weights: there is no adapter to register."""


def non_finite_parameters(named: Sequence[tuple[str, Any]]) -> list[str]:
    """The names of the tensors in ``named`` that hold a NaN or an infinity."""
    import torch

    return [name for name, tensor in named if not bool(torch.isfinite(tensor.detach()).all())]


@dataclass
class _Progress:
    """Where a run stands, besides its tensors: what a checkpoint restores."""

    step: int  # optimizer steps done
    epoch: int  # the epoch `order` belongs to
    order: list[int]  # that epoch's data order (empty = not shuffled yet)
    python_rng: Any  # random.Random state after that epoch's shuffle (None = fresh)
    losses: list[float]


def checkpoint_step(directory: Path) -> int | None:
    """The step a checkpoint directory was saved at, or None when its state file is unreadable."""
    try:
        step = json.loads((directory / CHECKPOINT_STATE_FILE).read_text(encoding="utf-8"))["step"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return step if isinstance(step, int) and step >= 0 else None


def train_lora(
    base_model: Path,
    examples: list[tuple[str, str]],
    out_dir: Path,
    cfg: LoraTrainConfig,
    on_step: Callable[[int, int, float], None] | None = None,
    checkpoint_dir: Path | None = None,
    on_checkpoint: Callable[[Path, int], None] | None = None,
) -> TrainReport:
    """Fine-tune a LoRA adapter on (prompt, completion) pairs and save it to out_dir.

    With `checkpoint_dir` (one directory per job), the run resumes from the newest valid
    checkpoint there and, when cfg.checkpoint_every > 0, saves one every that many steps;
    `on_checkpoint(path, step)` is called after each save. `on_step(step, total, loss)` is
    called for each step this call runs (after a resume, from the checkpoint's step + 1).
    """
    if not examples:
        raise ValueError("train_lora needs at least one example")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.monotonic()
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = [encode_example(tokenizer, p, c, cfg.max_length) for p, c in examples]
    encoded = [e for e in encoded if any(label != IGNORE_INDEX for label in e[1][1:])]
    if not encoded:
        raise ValueError("no example has completion tokens left after truncation to max_length")

    model: Any = AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype)
    model = model.to(device)
    model.config.use_cache = False
    lora_cfg = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora_cfg)
    model.train()
    named_params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named_params]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(encoded) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total))
    )

    progress: _Progress | None = None
    fingerprint = _fingerprint(base_model, cfg, str(dtype), encoded)
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        progress = _resume(checkpoint_dir, fingerprint, named_params, optimizer, scheduler, device)
    if progress is None:
        progress = _Progress(step=0, epoch=0, order=[], python_rng=None, losses=[])
    elif progress.python_rng is not None:
        rng.setstate(progress.python_rng)
    resumed_from_step = progress.step
    losses = progress.losses
    step = progress.step
    batch: dict[str, Any] = {}
    loss: Any = None
    for epoch in range(progress.epoch, cfg.epochs):
        if epoch == progress.epoch and progress.order:
            order = progress.order  # resumed inside this epoch: keep the order it was shuffled into
        else:
            order = list(range(len(encoded)))
            rng.shuffle(order)
        for batch_index in range(step - epoch * steps_per_epoch, steps_per_epoch):
            start = batch_index * cfg.batch_size
            batch = collate([encoded[i] for i in order[start : start + cfg.batch_size]], pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = _loss(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            value = float(loss.detach().float().item())
            losses.append(value)
            # No checkpoint after the last step: the adapter itself is saved right after.
            due = cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0 and step < total
            if checkpoint_dir is not None and due:
                state = _Progress(step, epoch, order, rng.getstate(), losses)
                saved = _save_checkpoint(
                    checkpoint_dir, fingerprint, total, state, named_params, optimizer, scheduler, device
                )
                if on_checkpoint is not None:
                    on_checkpoint(saved, step)
            if on_step is not None:
                on_step(step, total, value)

    # A learning rate too high for the data ends in NaN weights that vLLM would serve as garbage:
    # refuse to save them (the caller then registers nothing).
    broken = non_finite_parameters(named_params)
    last_losses = losses[-steps_per_epoch:]
    if broken or not all(math.isfinite(x) for x in last_losses):
        raise TrainingDiverged(
            f"training diverged at learning rate {cfg.learning_rate:g}: final losses "
            f"{[round(x, 4) for x in last_losses[-3:]]}, {len(broken)} non-finite adapter tensors"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)

    del model, optimizer, scheduler, params, named_params, batch, loss
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()

    last = losses[-steps_per_epoch:]
    report = TrainReport(
        final_loss=sum(last) / len(last),
        steps=step,
        examples=len(encoded),
        seconds=time.monotonic() - t0,
        losses=losses,
        resumed_from_step=resumed_from_step,
    )
    log.info(
        "LoRA trained: %d examples, %d steps (resumed from step %d), %.1f s, final loss %.4f",
        len(encoded),
        step,
        resumed_from_step,
        report.seconds,
        report.final_loss,
    )
    return report


def _fingerprint(base_model: Path, cfg: LoraTrainConfig, dtype: str, encoded: list[Any]) -> str:
    """A hash of everything that determines a run, so a checkpoint is only resumed by the same run."""
    settings = asdict(cfg)
    # When checkpoints are taken does not change the result; the device shows in dtype.
    settings.pop("checkpoint_every")
    settings.pop("device")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "base_model": str(Path(base_model).resolve()),
        "dtype": dtype,
        "config": settings,
        "examples": encoded,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    """Flush a file or directory to disk, so a rename never exposes unwritten data after a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save_checkpoint(
    checkpoint_dir: Path,
    fingerprint: str,
    total: int,
    progress: _Progress,
    named_params: list[tuple[str, Any]],
    optimizer: Any,
    scheduler: Any,
    device: Any,
) -> Path:
    """Write `<checkpoint_dir>/step-<N>` atomically (temp dir + rename); keep only the newest."""
    import torch
    from safetensors.torch import save_file

    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    target = checkpoint_dir / f"{CHECKPOINT_PREFIX}{progress.step:08d}"
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=checkpoint_dir))
    try:
        weights = {name: p.detach().to("cpu").contiguous() for name, p in named_params}
        save_file(weights, str(staging / CHECKPOINT_ADAPTER_FILE))
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
            },
            staging / CHECKPOINT_OPTIMIZER_FILE,
        )
        state = {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": fingerprint,
            "step": progress.step,
            "total": total,
            "epoch": progress.epoch,
            "order": progress.order,
            "python_rng": progress.python_rng,
            "losses": progress.losses,
            "sha256": {
                name: _sha256(staging / name) for name in (CHECKPOINT_ADAPTER_FILE, CHECKPOINT_OPTIMIZER_FILE)
            },
        }
        (staging / CHECKPOINT_STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
        for path in staging.iterdir():
            _fsync(path)
        _fsync(staging)
        if target.exists():  # saved before by a run that then died: same content
            shutil.rmtree(target)
        os.rename(staging, target)
        _fsync(checkpoint_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # An older checkpoint is never the one to resume from once a newer one is complete.
    for other in checkpoint_dir.iterdir():
        if other != target and other.is_dir() and not other.name.startswith("."):
            shutil.rmtree(other, ignore_errors=True)
    log.debug("training checkpoint saved", extra={"path": str(target), "step": progress.step})
    return target


def _resume(
    checkpoint_dir: Path,
    fingerprint: str,
    named_params: list[tuple[str, Any]],
    optimizer: Any,
    scheduler: Any,
    device: Any,
) -> _Progress | None:
    """Load the newest usable checkpoint of `checkpoint_dir` into the run; None when there is none.

    Unusable checkpoints (missing or damaged files, another run's inputs) are logged and removed.
    """
    if not checkpoint_dir.is_dir():
        return None
    candidates: list[tuple[int, Path]] = []
    for path in checkpoint_dir.iterdir():
        if path.name.startswith("."):  # a save that died before its rename
            shutil.rmtree(path, ignore_errors=True)
            continue
        if path.is_dir():
            step = checkpoint_step(path)
            candidates.append((-1 if step is None else step, path))
    for _, path in sorted(candidates, reverse=True):
        try:
            progress, weights, saved = _read_checkpoint(path, fingerprint, named_params)
        except Exception as exc:
            log.warning(
                "ignoring an unusable training checkpoint: %s",
                exc,
                extra={"path": str(path), "reason": f"{type(exc).__name__}: {exc}"},
            )
            shutil.rmtree(path, ignore_errors=True)
            continue
        _apply_checkpoint(path, progress, weights, saved, named_params, optimizer, scheduler, device)
        log.info(
            "resuming training from step %d", progress.step, extra={"path": str(path), "step": progress.step}
        )
        return progress
    return None


def _read_checkpoint(
    path: Path, fingerprint: str, named_params: list[tuple[str, Any]]
) -> tuple[_Progress, dict[str, Any], dict[str, Any]]:
    """Read and check a checkpoint completely before anything of it is applied to the run."""
    import torch
    from safetensors.torch import load_file

    state = json.loads((path / CHECKPOINT_STATE_FILE).read_text(encoding="utf-8"))
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}")
    if state.get("fingerprint") != fingerprint:
        raise ValueError("checkpoint of a run with other examples, settings or base model")
    for name in (CHECKPOINT_ADAPTER_FILE, CHECKPOINT_OPTIMIZER_FILE):
        if _sha256(path / name) != state["sha256"][name]:
            raise ValueError(f"{name}: checksum mismatch")
    weights = load_file(str(path / CHECKPOINT_ADAPTER_FILE))
    shapes = {name: tuple(p.shape) for name, p in named_params}
    if {name: tuple(t.shape) for name, t in weights.items()} != shapes:
        raise ValueError("adapter weights do not match the model's trainable parameters")
    # weights_only: the file is data (tensors, numbers, lists), never code to unpickle.
    saved = torch.load(path / CHECKPOINT_OPTIMIZER_FILE, map_location="cpu", weights_only=True)
    groups = saved["optimizer"]["param_groups"]
    if len(groups) != 1 or len(groups[0]["params"]) != len(named_params):
        raise ValueError("optimizer state does not match the model's trainable parameters")
    python_rng = state["python_rng"]
    progress = _Progress(
        step=int(state["step"]),
        epoch=int(state["epoch"]),
        order=[int(i) for i in state["order"]],
        python_rng=(python_rng[0], tuple(python_rng[1]), python_rng[2]),
        losses=[float(v) for v in state["losses"]],
    )
    if progress.step != len(progress.losses) or progress.step >= int(state["total"]):
        raise ValueError(f"inconsistent progress: step {progress.step}, {len(progress.losses)} losses")
    return progress, weights, saved


def _apply_checkpoint(
    path: Path,
    progress: _Progress,
    weights: dict[str, Any],
    saved: dict[str, Any],
    named_params: list[tuple[str, Any]],
    optimizer: Any,
    scheduler: Any,
    device: Any,
) -> None:
    """Put a checked checkpoint's state into the model, optimizer, scheduler and torch RNG."""
    import torch

    try:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        with torch.no_grad():
            for name, p in named_params:
                p.copy_(weights[name].to(device=p.device, dtype=p.dtype))
        torch.set_rng_state(saved["torch_rng"])
        if device.type == "cuda" and len(saved["cuda_rng"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
    except Exception:
        # The run is half restored and cannot go on; without the checkpoint the retry starts over.
        shutil.rmtree(path, ignore_errors=True)
        raise
