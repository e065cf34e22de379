"""LoRA SFT with peft on the real default model."""

# Fixtures imported from tests.model_fixtures are shadowed by test parameters on purpose.
# ruff: noqa: F811
from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.trainer.lora import (
    IGNORE_INDEX,
    LoraTrainConfig,
    TrainReport,
    build_labels,
    collate,
    encode_example,
    train_lora,
)
from tests.model_fixtures import CODE_EXAMPLES, default_model  # noqa: F401


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
