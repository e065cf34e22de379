"""The sampler's local disk cache of LoRA adapters: bounded, least recently used evicted first.

Adapters come from the Object Store (``registry.fetch_adapter``) into
``<root>/ucoder-v<N>/``. The cache keeps at most ``capacity`` of them; when one more is
needed, the least recently used adapter that no request is using is deleted. An adapter in
use (a request holds it from before the download until its generation returns) is never
deleted, so the cache may briefly hold more than ``capacity`` when more are in use at once.
vLLM loads an adapter's weights from its directory only when a request names it, and
keeps at most ``max_loras`` of them in the engine by itself; after an eviction the next
request for that version downloads it again before generating.

Recency survives a restart: every use touches the directory, and a new cache orders what it
finds on disk by modification time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import uuid
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from services.sampler import metrics
from ucoder_common import registry

log = logging.getLogger(__name__)

_NAME = re.compile(r"^ucoder-v(\d+)$")
_EVICTING = ".evicting-"
CONFIG_FILE = "adapter_config.json"


class AdapterCache:
    def __init__(self, root: Path, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.root = Path(root)
        self.capacity = capacity
        self._recent: OrderedDict[int, None] = OrderedDict()  # least recently used first
        self._pins: Counter[int] = Counter()
        self._locks: dict[int, asyncio.Lock] = {}
        self._scan()

    def path(self, version: int) -> Path:
        return self.root / registry.adapter_name(version)

    def cached(self) -> list[int]:
        """Versions on disk, least recently used first."""
        return list(self._recent)

    def in_use(self, version: int) -> bool:
        return self._pins[version] > 0

    def _complete(self, version: int) -> bool:
        return (self.path(version) / CONFIG_FILE).is_file()

    def _scan(self) -> None:
        """Adopt adapters already on disk (oldest first); remove evictions a crash left half done."""
        found: list[tuple[float, int]] = []
        if self.root.is_dir():
            for entry in self.root.iterdir():
                if entry.name.startswith(_EVICTING):
                    shutil.rmtree(entry, ignore_errors=True)
                    continue
                match = _NAME.match(entry.name)
                if match and (entry / CONFIG_FILE).is_file():
                    found.append((entry.stat().st_mtime, int(match.group(1))))
        for _, version in sorted(found):
            self._recent[version] = None
        self._evict()

    @contextlib.asynccontextmanager
    async def use(self, version: int, fetch: Callable[[], Awaitable[Path]]) -> AsyncIterator[Path]:
        """The adapter's directory, held (not evictable) until the block ends.

        `fetch` downloads it into ``self.path(version)`` when it is not on disk; concurrent
        requests for one version download it once.
        """
        self._pins[version] += 1
        try:
            lock = self._locks.setdefault(version, asyncio.Lock())
            async with lock:
                if not self._complete(version):
                    got = Path(await fetch())
                    if got != self.path(version):
                        raise RuntimeError(f"adapter v{version} landed in {got}, not {self.path(version)}")
                    metrics.ADAPTER_FETCHES.inc()
                    log.info("adapter fetched", extra={"version": version, "path": str(got)})
            self._recent[version] = None
            self._recent.move_to_end(version)
            with contextlib.suppress(OSError):
                os.utime(self.path(version))
            self._evict()
            yield self.path(version)
        finally:
            self._pins[version] -= 1
            if self._pins[version] <= 0:
                del self._pins[version]
            self._evict()

    def _evict(self) -> None:
        """Delete least recently used adapters not in use until at most `capacity` remain."""
        for version in list(self._recent):
            if len(self._recent) <= self.capacity:
                break
            if self.in_use(version):
                continue
            del self._recent[version]
            self._locks.pop(version, None)
            self._remove(version)
            metrics.ADAPTER_EVICTIONS.inc()
            log.info("adapter evicted", extra={"version": version})
        metrics.ADAPTERS_CACHED.set(len(self._recent))

    def _remove(self, version: int) -> None:
        path = self.path(version)
        # Rename first: a directory is either complete under its name or gone.
        doomed = self.root / f"{_EVICTING}{path.name}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)
