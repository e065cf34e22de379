"""LoRA SFT with peft on the real default model; checkpoints and resuming on the tiny model."""

# Fixtures imported from tests.model_fixtures are shadowed by test parameters on purpose.
# ruff: noqa: F811
from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from nats.js.errors import ObjectNotFoundError
from prometheus_client import REGISTRY

from services.trainer.app import Trainer, TrainerConfig, checkpoint_key, checkpoint_object_name
from services.trainer.lora import (
    CHECKPOINT_ADAPTER_FILE,
    CHECKPOINT_OPTIMIZER_FILE,
    CHECKPOINT_STATE_FILE,
    IGNORE_INDEX,
    LoraTrainConfig,
    TrainReport,
    _read_checkpoint,
    build_labels,
    collate,
    encode_example,
    train_lora,
)
from tests.conftest import NatsServer
from tests.model_fixtures import CODE_EXAMPLES, default_model, tiny_model  # noqa: F401
from ucoder_common import registry
from ucoder_common.bus import Bus
from ucoder_common.pb import common_pb2, trainer_pb2


def test_build_labels_masks_prompt() -> None:
    assert build_labels([5, 6, 7, 8, 9], 3) == [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 8, 9]
    assert build_labels([5, 6], 4) == [IGNORE_INDEX, IGNORE_INDEX]


def test_collate_pads_and_masks() -> None:
    batch = collate([([1, 2, 3], [IGNORE_INDEX, 2, 3]), ([4], [4])], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 2, 3], [4, IGNORE_INDEX, IGNORE_INDEX]]


@pytest.mark.slow
def test_encode_example_masks_prompt(default_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(default_model)
    prompt, completion = CODE_EXAMPLES[0]
    ids, labels = encode_example(tok, prompt, completion, max_length=512)
    prompt_ids = tok(prompt)["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert ids[: len(prompt_ids)] == prompt_ids
    assert labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    assert labels[len(prompt_ids) :] == ids[len(prompt_ids) :]
    assert ids[-1] == tok.eos_token_id
    assert tok.decode(ids[len(prompt_ids) : -1]) == completion
    short_ids, short_labels = encode_example(tok, prompt, completion, max_length=4)
    assert len(short_ids) == len(short_labels) == 4
    assert set(short_labels) == {IGNORE_INDEX}


@pytest.fixture(scope="module")
def trained(default_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainReport]:
    out = tmp_path_factory.mktemp("adapter")
    seen: list[tuple[int, int, float]] = []
    cfg = LoraTrainConfig(learning_rate=1e-3, epochs=3, batch_size=2)
    report = train_lora(
        default_model, CODE_EXAMPLES, out, cfg, on_step=lambda s, t, loss: seen.append((s, t, loss))
    )
    assert [s for s, _, _ in seen] == list(range(1, report.steps + 1))
    assert all(t == report.steps for _, t, _ in seen)
    return out, report


@pytest.mark.slow
def test_loss_decreases_over_epochs(trained: tuple[Path, TrainReport]) -> None:
    _, report = trained
    assert report.examples == len(CODE_EXAMPLES)
    assert report.steps == 3 * 2 == len(report.losses)
    per_epoch = [sum(report.losses[i : i + 2]) / 2 for i in range(0, 6, 2)]
    assert per_epoch[0] > per_epoch[1] > per_epoch[2]
    assert report.final_loss == pytest.approx(per_epoch[2])
    assert report.final_loss < 0.5 * per_epoch[0]
    assert report.seconds > 0


@pytest.mark.slow
def test_adapter_files_reload_with_peft(trained: tuple[Path, TrainReport], default_model: Path) -> None:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = trained
    assert (out / "adapter_model.safetensors").is_file()
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    assert config["r"] == 8
    assert sorted(config["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    saved = load_file(str(out / "adapter_model.safetensors"))
    assert saved and any("lora_B" in k and v.abs().sum() > 0 for k, v in saved.items())

    tok = AutoTokenizer.from_pretrained(default_model)
    base = AutoModelForCausalLM.from_pretrained(default_model, dtype=torch.float32)
    ids = tok(CODE_EXAMPLES[0][0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        base_logits = base(input_ids=ids).logits[0, -1].clone()
    model = PeftModel.from_pretrained(base, out)
    model.eval()
    loaded = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert len(loaded) == len(saved)
    for key, value in saved.items():
        match = [
            v for k, v in loaded.items() if k.replace(".default", "").endswith(key.split("base_model.")[-1])
        ]
        assert match, key
        assert torch.equal(match[0].float(), value.float())
    with torch.no_grad():
        tuned_logits = model(input_ids=ids).logits[0, -1]
    assert not torch.allclose(base_logits, tuned_logits)
    del model, base


# Checkpoints and resuming, on the tiny model (seconds per run). 8 examples in batches of 3 over
# 3 epochs make 9 steps; with a checkpoint every 2 steps, a run killed after step 5 resumes from
# the checkpoint of step 4, inside the second epoch (so the saved data order matters). On CPU,
# where torch is deterministic, so that resumed and uninterrupted weights can be compared exactly.
RESUME_EXAMPLES: list[tuple[str, str]] = [
    *CODE_EXAMPLES,
    *[(p, c.replace("    return ", "    result = ") + "    return result\n") for p, c in CODE_EXAMPLES],
]
RESUME_CFG = LoraTrainConfig(
    rank=8,
    alpha=16,
    learning_rate=1e-3,
    epochs=3,
    batch_size=3,
    max_length=512,
    checkpoint_every=2,
    device="cpu",
)
RESUME_STEPS = 9
KILL_AFTER_STEP = 5
LAST_CHECKPOINT = "step-00000004"

# Run in a child process that SIGKILLs itself right after step KILL_AFTER_STEP: no exception,
# no finally block, no atexit, as when a pod is OOM-killed or evicted mid-training.
KILLED_RUN = """
import json, os, signal, sys
from pathlib import Path
from services.trainer.lora import LoraTrainConfig, train_lora

args = json.loads(sys.argv[1])
cfg = LoraTrainConfig(**{**args["cfg"], "target_modules": tuple(args["cfg"]["target_modules"])})

def on_step(step, total, loss):
    print(step, flush=True)
    if step == args["kill_after"]:
        os.kill(os.getpid(), signal.SIGKILL)

examples = [tuple(e) for e in args["examples"]]
train_lora(Path(args["model"]), examples, Path(args["out"]), cfg, on_step, Path(args["checkpoints"]))
"""


def adapter_weights(adapter_dir: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(adapter_dir / "adapter_model.safetensors"))


def assert_same_weights(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    import torch

    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(actual[key], value, rtol=0, atol=1e-6, msg=key)
    # Not vacuous: training moved the zero-initialized B matrices.
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in expected.items())


@pytest.fixture(scope="module")
def uninterrupted(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], TrainReport]:
    out = tmp_path_factory.mktemp("uninterrupted")
    report = train_lora(tiny_model, RESUME_EXAMPLES, out, RESUME_CFG)
    assert report.steps == RESUME_STEPS and report.resumed_from_step == 0
    return adapter_weights(out), report


@pytest.fixture(scope="module")
def killed_checkpoint(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint directory a training process left when it was killed after step 5."""
    work = tmp_path_factory.mktemp("killed")
    args = {
        "model": str(tiny_model),
        "examples": RESUME_EXAMPLES,
        "cfg": asdict(RESUME_CFG),
        "kill_after": KILL_AFTER_STEP,
        "out": str(work / "adapter"),
        "checkpoints": str(work / "job"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, json.dumps(args)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert proc.stdout.split() == [str(s) for s in range(1, KILL_AFTER_STEP + 1)]
    assert not (work / "adapter").exists()
    assert [p.name for p in (work / "job").iterdir()] == [LAST_CHECKPOINT]
    return work / "job"


def copy_checkpoints(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


@pytest.mark.slow
def test_killed_training_resumes_from_its_last_checkpoint(
    tiny_model: Path,
    uninterrupted: tuple[dict[str, Any], TrainReport],
    killed_checkpoint: Path,
    tmp_path: Path,
) -> None:
    job = copy_checkpoints(killed_checkpoint, tmp_path / "job")
    seen: list[int] = []
    report = train_lora(
        tiny_model,
        RESUME_EXAMPLES,
        tmp_path / "adapter",
        RESUME_CFG,
        on_step=lambda step, total, loss: seen.append(step),
        checkpoint_dir=job,
    )
    # Steps 1-4 come from the checkpoint; step 5 (done after it, then lost) is redone.
    assert seen == list(range(5, RESUME_STEPS + 1))
    assert report.resumed_from_step == 4
    assert report.steps == RESUME_STEPS == len(report.losses)
    expected_weights, expected_report = uninterrupted
    assert report.losses == pytest.approx(expected_report.losses, rel=1e-6)
    assert report.final_loss == pytest.approx(expected_report.final_loss, rel=1e-6)
    assert_same_weights(adapter_weights(tmp_path / "adapter"), expected_weights)
    # Checkpoints of the resumed run replaced the old one; the app deletes them once registered.
    assert [p.name for p in job.iterdir()] == ["step-00000008"]


@pytest.mark.slow
def test_checkpoint_with_a_missing_file_is_ignored(
    tiny_model: Path,
    uninterrupted: tuple[dict[str, Any], TrainReport],
    killed_checkpoint: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = copy_checkpoints(killed_checkpoint, tmp_path / "job")
    (job / LAST_CHECKPOINT / CHECKPOINT_OPTIMIZER_FILE).unlink()
    seen: list[int] = []
    with caplog.at_level(logging.WARNING, logger="services.trainer.lora"):
        report = train_lora(
            tiny_model,
            RESUME_EXAMPLES,
            tmp_path / "adapter",
            RESUME_CFG,
            on_step=lambda step, total, loss: seen.append(step),
            checkpoint_dir=job,
        )
    warnings = [
        r for r in caplog.records if r.name == "services.trainer.lora" and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1 and "unusable training checkpoint" in warnings[0].getMessage()
    assert CHECKPOINT_OPTIMIZER_FILE in warnings[0].getMessage()
    assert seen == list(range(1, RESUME_STEPS + 1))  # started over
    assert report.resumed_from_step == 0
    assert_same_weights(adapter_weights(tmp_path / "adapter"), uninterrupted[0])


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "no state file", "other inputs"])
def test_damaged_or_foreign_checkpoint_is_refused(
    killed_checkpoint: Path, tmp_path: Path, damage: str
) -> None:
    from safetensors.torch import load_file

    path = copy_checkpoints(killed_checkpoint / LAST_CHECKPOINT, tmp_path / "step")
    named_params = list(load_file(str(path / CHECKPOINT_ADAPTER_FILE)).items())
    fingerprint = json.loads((path / CHECKPOINT_STATE_FILE).read_text())["fingerprint"]
    progress, _, _ = _read_checkpoint(path, fingerprint, named_params)  # intact: accepted
    assert progress.step == 4 and progress.epoch == 1 and len(progress.order) == len(RESUME_EXAMPLES)

    if damage == "flipped byte":
        flipped = bytearray((path / CHECKPOINT_ADAPTER_FILE).read_bytes())
        flipped[-1] ^= 0x01
        (path / CHECKPOINT_ADAPTER_FILE).write_bytes(bytes(flipped))
    elif damage == "truncated":
        whole = (path / CHECKPOINT_OPTIMIZER_FILE).read_bytes()
        (path / CHECKPOINT_OPTIMIZER_FILE).write_bytes(whole[: len(whole) // 2])
    elif damage == "no state file":
        (path / CHECKPOINT_STATE_FILE).unlink()
    else:  # the checkpoint of a run with other examples or settings
        fingerprint = "0" * 64
    with pytest.raises((ValueError, OSError)):
        _read_checkpoint(path, fingerprint, named_params)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.slow
async def test_trainer_resumes_only_its_own_jobs_checkpoint(
    tiny_model: Path,
    uninterrupted: tuple[dict[str, Any], TrainReport],
    killed_checkpoint: Path,
    tmp_path: Path,
) -> None:
    # A NATS server of its own: this test registers model versions.
    server = NatsServer()
    server.start()
    bus = await Bus.connect(server.url, name="ucoder-test-trainer")
    try:
        cfg = TrainerConfig(
            model=str(tiny_model),
            lora_rank=RESUME_CFG.rank,
            learning_rate=RESUME_CFG.learning_rate,
            epochs=RESUME_CFG.epochs,
            batch_size=RESUME_CFG.batch_size,
            max_length=RESUME_CFG.max_length,
            checkpoint_every=RESUME_CFG.checkpoint_every,
            checkpoint_dir=str(tmp_path / "checkpoints"),
            device=RESUME_CFG.device,
        )
        cfg.validate()
        trainer = Trainer(cfg, bus)
        await trainer.start()
        examples = [common_pb2.TrainExample(prompt=p, completion=c) for p, c in RESUME_EXAMPLES]
        job_a = trainer_pb2.TrainRequest(iteration_id="it-a", base_version=0, examples=examples)
        job_b = trainer_pb2.TrainRequest(iteration_id="it-b", base_version=0, examples=examples)
        key_a, key_b = checkpoint_key("it-a", 0), checkpoint_key("it-b", 0)
        assert key_a != key_b != checkpoint_key("it-a", 1)
        # Job A was killed on another machine: its checkpoint is only in the Object Store. Job B
        # trains on the same examples with the same settings, so only the job key tells them apart.
        await bus.objects.put(
            checkpoint_object_name(key_a), registry.pack_dir(killed_checkpoint / LAST_CHECKPOINT)
        )

        steps, resumed = metric("ucoder_trainer_steps_total"), metric("ucoder_trainer_resumed_total")
        stored = metric("ucoder_trainer_checkpoints_total", where="store")
        answer_b = await trainer.train(job_b)
        assert metric("ucoder_trainer_steps_total") - steps == RESUME_STEPS  # from step 0
        assert metric("ucoder_trainer_resumed_total") == resumed
        assert metric("ucoder_trainer_checkpoints_total", where="store") - stored == 4  # steps 2, 4, 6, 8
        assert answer_b.steps == RESUME_STEPS
        adapter_b = await registry.fetch_adapter(bus, answer_b.model_version, tmp_path / "cache")
        assert_same_weights(adapter_weights(adapter_b), uninterrupted[0])
        # B's checkpoints are gone, local and remote; A's is untouched.
        assert not (trainer.checkpoint_root / key_b).exists()
        with pytest.raises(ObjectNotFoundError):
            await bus.objects.get_info(checkpoint_object_name(key_b))
        await bus.objects.get_info(checkpoint_object_name(key_a))

        steps = metric("ucoder_trainer_steps_total")
        answer_a = await trainer.train(job_a)
        assert metric("ucoder_trainer_steps_total") - steps == RESUME_STEPS - 4  # from step 4
        assert metric("ucoder_trainer_resumed_total") == resumed + 1
        assert answer_a.steps == RESUME_STEPS
        assert answer_a.model_version.version == answer_b.model_version.version + 1
        adapter_a = await registry.fetch_adapter(bus, answer_a.model_version, tmp_path / "cache")
        assert_same_weights(adapter_weights(adapter_a), uninterrupted[0])
        assert not (trainer.checkpoint_root / key_a).exists()
        with pytest.raises(ObjectNotFoundError):
            await bus.objects.get_info(checkpoint_object_name(key_a))
    finally:
        await bus.close()
        server.cleanup()
