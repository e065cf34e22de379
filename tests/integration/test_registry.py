"""The model registry on a real nats-server: numbering, `current`, and keeping an earlier version."""

from __future__ import annotations

from pathlib import Path

import pytest

from ucoder_common import registry
from ucoder_common.bus import Bus


def adapter_dir(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "adapter_config.json").write_text('{"r": 8}')
    (directory / "adapter_model.safetensors").write_bytes(name.encode() * 100)
    return directory


async def register(bus: Bus, tmp_path: Path, name: str) -> int:
    entry = await registry.register_adapter(
        bus, adapter_dir(tmp_path, name), base_model="/m", iteration_id=name, train_examples=1, train_loss=0.5
    )
    return entry.version


async def test_versions_keep_counting_after_an_earlier_one_is_made_current(bus: Bus, tmp_path: Path) -> None:
    start = await registry.latest_version_number(bus)  # the session's NATS may hold versions already
    first = await register(bus, tmp_path, "first")
    second = await register(bus, tmp_path, "second")
    assert (first, second) == (start + 1, start + 2)
    current = await registry.current_version(bus)
    assert current is not None and current.version == second

    kept = await registry.set_current(bus, first)
    assert kept.version == first and kept.iteration_id == "first"
    current = await registry.current_version(bus)
    assert current is not None and current.version == first
    # The next adapter is numbered after the highest ever registered, not after `current`.
    third = await register(bus, tmp_path, "third")
    assert third == start + 3
    assert (await registry.get_version(bus, second)) is not None  # nothing was overwritten

    base = await registry.set_current(bus, 0, base_model="/m")
    current = await registry.current_version(bus)
    assert base.version == 0 and current is not None and current.version == 0 and current.base_model == "/m"
    with pytest.raises(KeyError, match="model version 999 is not registered"):
        await registry.set_current(bus, 999)
    fetched = await registry.fetch_adapter(bus, kept, tmp_path / "cache")
    assert (fetched / "adapter_model.safetensors").read_bytes() == b"first" * 100
