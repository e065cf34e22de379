"""The model registry: which adapter is M_t, stored in the KV bucket and the Object Store.

Version 0 is the base model. The trainer registers version N+1 after training on data
sampled from version N: the adapter directory goes to the Object Store as a tar archive
(`adapters/v<N>.tar`), its ModelVersion to the KV bucket under `v<N>`; `latest` holds the
highest version ever registered (new versions are numbered after it) and `current` the version
new iterations start from: the newest, until a run with early stopping keeps an earlier, better
one (`set_current`).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from ucoder_common import subjects
from ucoder_common.bus import Bus, kv_get
from ucoder_common.pb import common_pb2


def adapter_object_name(version: int) -> str:
    return f"adapters/v{version}.tar"


def adapter_name(version: int) -> str:
    """The LoRA name the sampler serves a version under."""
    return f"ucoder-v{version}"


def pack_dir(directory: Path) -> bytes:
    """A tar archive of the files directly in `directory`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(directory.iterdir()):
            if path.is_file():
                tar.add(path, arcname=path.name)
    return buffer.getvalue()


def unpack_to(data: bytes, directory: Path) -> None:
    """Extract an archive made by pack_dir; refuses anything but plain files at the top level."""
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        for member in tar.getmembers():
            if not member.isfile() or "/" in member.name or member.name in ("", ".", ".."):
                raise ValueError(f"adapter archive holds an unexpected entry {member.name!r}")
        tar.extractall(directory, filter="data")


async def get_version(bus: Bus, version: int) -> common_pb2.ModelVersion | None:
    raw = await kv_get(bus.kv(subjects.MODELS_BUCKET), subjects.model_key(version))
    return None if raw is None else common_pb2.ModelVersion.FromString(raw)


async def current_version(bus: Bus) -> common_pb2.ModelVersion | None:
    """The version new iterations start from (the newest, unless a run kept an earlier best), or
    None when only the base model exists."""
    raw = await kv_get(bus.kv(subjects.MODELS_BUCKET), subjects.CURRENT_MODEL_KEY)
    return None if raw is None else common_pb2.ModelVersion.FromString(raw)


async def latest_version_number(bus: Bus) -> int:
    """The highest version ever registered (0 when none): new versions are numbered after it."""
    kv = bus.kv(subjects.MODELS_BUCKET)
    raw = await kv_get(kv, subjects.LATEST_MODEL_KEY)
    if raw is not None:
        return common_pb2.ModelVersion.FromString(raw).version
    current = await current_version(bus)  # registries written before the latest key existed
    return current.version if current is not None else 0


async def set_current(bus: Bus, version: int, base_model: str = "") -> common_pb2.ModelVersion:
    """Make a registered version (or the base model, 0) the one new iterations start from."""
    if version == 0:
        entry = common_pb2.ModelVersion(version=0, base_model=base_model)
    else:
        found = await get_version(bus, version)
        if found is None:
            raise KeyError(f"model version {version} is not registered")
        entry = found
    await bus.kv(subjects.MODELS_BUCKET).put(subjects.CURRENT_MODEL_KEY, entry.SerializeToString())
    return entry


async def register_adapter(
    bus: Bus,
    adapter_dir: Path,
    *,
    base_model: str,
    iteration_id: str,
    train_examples: int,
    train_loss: float,
) -> common_pb2.ModelVersion:
    """Store the adapter and make it the next (current) version."""
    version = await latest_version_number(bus) + 1
    name = adapter_object_name(version)
    await bus.objects.put(name, pack_dir(adapter_dir))
    entry = common_pb2.ModelVersion(
        version=version,
        base_model=base_model,
        adapter_object=name,
        iteration_id=iteration_id,
        created_unix_ms=int(time.time() * 1000),
        train_examples=train_examples,
        train_loss=train_loss,
    )
    kv = bus.kv(subjects.MODELS_BUCKET)
    await kv.put(subjects.model_key(version), entry.SerializeToString())
    await kv.put(subjects.LATEST_MODEL_KEY, entry.SerializeToString())
    await kv.put(subjects.CURRENT_MODEL_KEY, entry.SerializeToString())
    return entry


async def fetch_adapter(bus: Bus, entry: common_pb2.ModelVersion, cache_root: Path) -> Path:
    """The adapter of `entry` as a local directory (downloaded once, then cached)."""
    target = cache_root / adapter_name(entry.version)
    if (target / "adapter_config.json").exists():
        return target
    result = await bus.objects.get(entry.adapter_object)
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".adapter-", dir=cache_root))
    try:
        unpack_to(bytes(result.data or b""), staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
