"""Unit tests for the trainer's checkpoint bookkeeping (keys, settings, locations, pruning)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import cast

import pytest

from services.trainer.app import (
    STALE_CHECKPOINT_AGE_S,
    Trainer,
    TrainerConfig,
    checkpoint_key,
    checkpoint_object_name,
)
from services.trainer.lora import CHECKPOINT_STATE_FILE, LoraTrainConfig, checkpoint_step
from ucoder_common.bus import Bus
from ucoder_common.config import ConfigError, load_config


def test_checkpoint_key_names_the_iteration_and_base_version() -> None:
    assert checkpoint_key("20250101-120000-abc123", 3) == "20250101-120000-abc123-v3"
    keys = {checkpoint_key("it-a", 0), checkpoint_key("it-b", 0), checkpoint_key("it-a", 1)}
    assert len(keys) == 3


def test_checkpoint_key_is_a_safe_file_and_object_name() -> None:
    assert checkpoint_key("../../etc", 0) == "______etc-v0"
    assert checkpoint_key("", 2) == "no-iteration-v2"
    assert checkpoint_object_name(checkpoint_key("it-a", 0)) == "checkpoints/it-a-v0.tar"


def test_checkpoint_settings() -> None:
    cfg = load_config(TrainerConfig, "trainer", [], {})
    assert cfg.checkpoint_every == 20 and cfg.checkpoint_dir == "" and cfg.checkpoint_store is True
    env = {"UCODER_TRAINER_CHECKPOINT_EVERY": "0", "UCODER_TRAINER_CHECKPOINT_STORE": "false"}
    cfg = load_config(TrainerConfig, "trainer", ["--checkpoint-dir", "/data/ckpt"], env)
    assert cfg.checkpoint_every == 0 and cfg.checkpoint_store is False and cfg.checkpoint_dir == "/data/ckpt"
    with pytest.raises(ConfigError, match="checkpoint_every"):
        load_config(TrainerConfig, "trainer", ["--checkpoint-every", "-1"], {})
    assert load_config(TrainerConfig, "trainer", ["--device", "cuda:1"], {}).device == "cuda:1"
    with pytest.raises(ConfigError, match="device"):
        load_config(TrainerConfig, "trainer", ["--device", "gpu"], {})
    assert LoraTrainConfig().checkpoint_every == 0  # the library call takes no checkpoints unless asked


def test_checkpoints_live_under_the_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("UCODER_CACHE_DIR", str(tmp_path))
    assert Trainer(TrainerConfig(), cast(Bus, None)).checkpoint_root == tmp_path / "checkpoints"
    custom = TrainerConfig(checkpoint_dir=str(tmp_path / "elsewhere"))
    assert Trainer(custom, cast(Bus, None)).checkpoint_root == tmp_path / "elsewhere"


def test_checkpoint_step_reads_the_state_file(tmp_path: Path) -> None:
    assert checkpoint_step(tmp_path) is None  # no state file
    (tmp_path / CHECKPOINT_STATE_FILE).write_text("{not json")
    assert checkpoint_step(tmp_path) is None
    (tmp_path / CHECKPOINT_STATE_FILE).write_text(json.dumps({"step": "7"}))
    assert checkpoint_step(tmp_path) is None
    (tmp_path / CHECKPOINT_STATE_FILE).write_text(json.dumps({"step": 7}))
    assert checkpoint_step(tmp_path) == 7


def test_stale_checkpoints_of_other_jobs_are_pruned(tmp_path: Path) -> None:
    trainer = Trainer(TrainerConfig(checkpoint_dir=str(tmp_path)), cast(Bus, None))
    old = time.time() - STALE_CHECKPOINT_AGE_S - 60
    for name in ("dead-job-v0", "own-job-v0", "recent-job-v0"):
        (tmp_path / name / "step-00000020").mkdir(parents=True)
    os.utime(tmp_path / "dead-job-v0", (old, old))
    os.utime(tmp_path / "own-job-v0", (old, old))  # the job being started: resumed, not pruned
    trainer._prune_stale_checkpoints("own-job-v0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["own-job-v0", "recent-job-v0"]
