"""Model helpers and fixtures for tests that need a real model.

Import the fixtures you need into a test module (they are plain pytest fixtures):

    from tests.model_fixtures import default_model, tiny_model  # noqa: F401

- default_model: Path of the Gemma 3 270M safetensors checkpoint (built once in the cache,
  ~45 s the first time on 2 CPU cores, then instant).
- tiny_model: Path of a tiny random-weight Gemma 3 text model (hidden 64, 2 layers) with the
  default tokenizer, cached under the UCoder cache; loads in transformers, peft and vLLM.
- CODE_EXAMPLES: small (prompt, completion) pairs for SFT tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ucoder_common.models import cache_dir, create_tiny_model, ensure_default_model

TINY_MODEL_NAME = "tiny-gemma3-test"

CODE_EXAMPLES: list[tuple[str, str]] = [
    ('def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n', "    return a + b\n"),
    ('def is_even(n: int) -> bool:\n    """Return True if n is even."""\n', "    return n % 2 == 0\n"),
    ('def square(x: int) -> int:\n    """Return x squared."""\n', "    return x * x\n"),
    ('def first(xs: list[int]) -> int:\n    """Return the first element of xs."""\n', "    return xs[0]\n"),
]


def default_model_path() -> Path:
    return ensure_default_model()


def tiny_model_path() -> Path:
    return create_tiny_model(cache_dir() / "models" / TINY_MODEL_NAME, base=ensure_default_model())


@pytest.fixture(scope="session")
def default_model() -> Path:
    return default_model_path()


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    return tiny_model_path()
