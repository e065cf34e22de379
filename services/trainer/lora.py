"""LoRA supervised fine-tuning with peft: a plain torch loop (AdamW, cosine schedule).

Examples are (prompt, completion) pairs. The prompt is tokenized exactly as the sampler sees
it (with BOS), the completion is appended (plus EOS), and only completion tokens carry loss:
prompt and padding positions get label -100. The adapter is saved with peft's
save_pretrained (adapter_config.json + adapter_model.safetensors), the layout that vLLM's
LoRARequest loads.
"""

from __future__ import annotations

import gc
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

IGNORE_INDEX = -100


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


@dataclass(frozen=True)
class TrainReport:
    final_loss: float  # mean loss over the last epoch's steps
    steps: int
    examples: int
    seconds: float
    losses: list[float]  # one per optimizer step


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


def train_lora(
    base_model: Path,
    examples: list[tuple[str, str]],
    out_dir: Path,
    cfg: LoraTrainConfig,
    on_step: Callable[[int, int, float], None] | None = None,
) -> TrainReport:
    """Fine-tune a LoRA adapter on (prompt, completion) pairs and save it to out_dir."""
    if not examples:
        raise ValueError("train_lora needs at least one example")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.monotonic()
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
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
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(encoded) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total))
    )

    losses: list[float] = []
    step = 0
    for _epoch in range(cfg.epochs):
        order = list(range(len(encoded)))
        rng.shuffle(order)
        for start in range(0, len(order), cfg.batch_size):
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
            if on_step is not None:
                on_step(step, total, value)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)

    del model, optimizer, scheduler, params, batch, loss
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
    )
    log.info(
        "LoRA trained: %d examples, %d steps, %.1f s, final loss %.4f",
        len(encoded),
        step,
        report.seconds,
        report.final_loss,
    )
    return report
