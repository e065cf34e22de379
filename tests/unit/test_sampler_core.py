"""Unit tests for services.sampler.core (body truncation, candidate assembly, ids) and the adapter cache."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from services.sampler.adapters import AdapterCache
from services.sampler.core import CANDIDATE_STOP, assemble_candidate, candidate_id, truncate_body

PROMPT = 'def absdiff(a: int, b: int) -> int:\n    """Return |a - b|."""\n'


def test_stop_sequences() -> None:
    assert CANDIDATE_STOP == ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert "]


def test_simple_body() -> None:
    assert truncate_body("    return abs(a - b)\n") == "    return abs(a - b)\n"


def test_body_without_trailing_newline_gets_one() -> None:
    assert truncate_body("    return abs(a - b)") == "    return abs(a - b)\n"


def test_nested_blocks_and_blank_lines_inside_body_are_kept() -> None:
    body = "    if a > b:\n        return a - b\n\n    for _ in range(1):\n\n        pass\n    return b - a\n"
    assert truncate_body(body) == body


def test_stops_at_following_top_level_statement() -> None:
    completion = "    return abs(a - b)\n\n\nprint(absdiff(1, 2))\n    return 0\n"
    assert truncate_body(completion) == "    return abs(a - b)\n"


def test_stops_at_next_def_and_comment() -> None:
    assert truncate_body("    x = 1\n    return x\ndef other():\n    pass\n") == "    x = 1\n    return x\n"
    assert truncate_body("    return 1\n# tests\n") == "    return 1\n"


def test_trailing_whitespace_lines_dropped() -> None:
    assert truncate_body("    return 1\n    \n\n  \n") == "    return 1\n"


def test_tab_indentation_counts_as_body() -> None:
    assert truncate_body("\treturn 1\nx = 2\n") == "\treturn 1\n"


def test_empty_or_unindented_completion_gives_empty_body() -> None:
    assert truncate_body("") == ""
    assert truncate_body("\n\n") == ""
    assert truncate_body("return 1\n    return 2\n") == ""


def test_leading_blank_line_kept_inside_body() -> None:
    assert truncate_body("\n    return 1\nfoo\n") == "\n    return 1\n"


def test_crlf() -> None:
    assert truncate_body("    return 1\r\n\r\nx = 1\r\n") == "    return 1\n"


def test_assemble_candidate_runs() -> None:
    code = assemble_candidate(PROMPT, "    return abs(a - b)\n\n\nassert absdiff(1, 3) == 2\nprint('hi')")
    assert code == PROMPT + "    return abs(a - b)\n"
    namespace: dict[str, object] = {}
    exec(compile(code, "<candidate>", "exec"), namespace)
    func = namespace["absdiff"]
    assert callable(func)
    assert func(1, 3) == 2


def test_assemble_with_empty_body_is_prompt_only() -> None:
    code = assemble_candidate(PROMPT, "print('no body')\n")
    assert code == PROMPT
    assert code.endswith("\n")


def test_assemble_adds_newline_after_prompt() -> None:
    code = assemble_candidate(PROMPT.rstrip("\n"), "    return 0")
    assert code == PROMPT + "    return 0\n"


def test_assemble_keeps_broken_body_for_the_executor() -> None:
    code = assemble_candidate(PROMPT, "    return (a -\n")
    assert code.endswith("    return (a -\n")
    with pytest.raises(SyntaxError):
        compile(code, "<candidate>", "exec")


def test_candidate_id() -> None:
    assert candidate_id("abc123", 7) == "abc123-c0007"
    assert candidate_id("abc123", 12345) == "abc123-c12345"
    assert candidate_id("p", 1) != candidate_id("p", 2)
    assert sorted(candidate_id("p", i) for i in (10, 2, 100)) == ["p-c0002", "p-c0010", "p-c0100"]
    with pytest.raises(ValueError, match="index"):
        candidate_id("p", -1)


def test_candidate_prompt_ends_with_the_skeleton_after_solved_examples() -> None:
    import ast

    from services.sampler.core import SOLVED_EXAMPLES, candidate_prompt

    skeleton = 'def f(x: int) -> int:\n    """Return x doubled."""'
    prompt = candidate_prompt(skeleton)
    assert prompt.startswith(SOLVED_EXAMPLES)
    assert prompt.endswith(skeleton + "\n")
    # The solved examples are complete, valid functions (the model imitates them).
    module = ast.parse(SOLVED_EXAMPLES)
    assert [type(node).__name__ for node in module.body] == ["FunctionDef", "FunctionDef"]
    assert all(isinstance(fn, ast.FunctionDef) and isinstance(fn.body[-1], ast.Return) for fn in module.body)


# ---------------------------------------------------------------------------------------------
# The adapter disk cache (services.sampler.adapters): bounded, least recently used evicted first.


class FakeStore:
    """Stands in for the Object Store download: writes the adapter's directory, counts calls."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fetched: list[int] = []

    def fetch(self, version: int) -> Callable[[], Awaitable[Path]]:
        async def run() -> Path:
            await asyncio.sleep(0.01)  # let concurrent users of the same version pile up
            self.fetched.append(version)
            target = self.root / f"ucoder-v{version}"
            target.mkdir(parents=True, exist_ok=True)
            (target / "adapter_config.json").write_text("{}")
            (target / "adapter_model.safetensors").write_bytes(b"weights")
            return target

        return run


def on_disk(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


async def use(cache: AdapterCache, store: FakeStore, version: int) -> Path:
    async with cache.use(version, store.fetch(version)) as path:
        assert (path / "adapter_config.json").is_file()
        return path


async def test_adapter_cache_keeps_at_most_capacity_evicting_least_recently_used(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    cache = AdapterCache(tmp_path, capacity=2)
    for version in (1, 2):
        assert await use(cache, store, version) == tmp_path / f"ucoder-v{version}"
    assert await use(cache, store, 1) == tmp_path / "ucoder-v1"  # a hit: 1 is now the most recent
    assert store.fetched == [1, 2]
    await use(cache, store, 3)
    assert cache.cached() == [1, 3]  # 2 was the least recently used
    assert on_disk(tmp_path) == ["ucoder-v1", "ucoder-v3"]
    await use(cache, store, 2)  # evicted adapters are downloaded again
    assert store.fetched == [1, 2, 3, 2]
    assert cache.cached() == [3, 2]
    assert on_disk(tmp_path) == ["ucoder-v2", "ucoder-v3"]


async def test_adapter_cache_never_evicts_an_adapter_in_use(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    cache = AdapterCache(tmp_path, capacity=1)
    async with cache.use(1, store.fetch(1)) as held:
        async with cache.use(2, store.fetch(2)):
            # Both are generating: the cache goes over capacity rather than delete either.
            assert cache.in_use(1) and cache.in_use(2)
            assert cache.cached() == [1, 2]
            assert on_disk(tmp_path) == ["ucoder-v1", "ucoder-v2"]
        # 2 is done; 1, the least recently used, is still in use, so 2 is the one to go.
        assert cache.cached() == [1]
        assert (held / "adapter_config.json").is_file()
    assert not cache.in_use(1)
    await use(cache, store, 3)
    assert cache.cached() == [3]
    assert on_disk(tmp_path) == ["ucoder-v3"]


async def test_adapter_cache_downloads_a_version_once_for_concurrent_requests(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    cache = AdapterCache(tmp_path, capacity=2)
    paths = await asyncio.gather(*(use(cache, store, 7) for _ in range(5)))
    assert set(paths) == {tmp_path / "ucoder-v7"}
    assert store.fetched == [7]
    assert not cache.in_use(7)


async def test_adapter_cache_failed_download_is_not_cached(tmp_path: Path) -> None:
    cache = AdapterCache(tmp_path, capacity=2)

    async def broken() -> Path:
        raise ConnectionError("object store down")

    with pytest.raises(ConnectionError):
        async with cache.use(4, broken):
            pass
    assert cache.cached() == []
    assert not cache.in_use(4)
    store = FakeStore(tmp_path)
    await use(cache, store, 4)
    assert cache.cached() == [4]


def test_adapter_cache_adopts_the_disk_after_a_restart(tmp_path: Path) -> None:
    for age, version in enumerate((5, 3, 9)):  # 5 oldest, 9 newest
        d = tmp_path / f"ucoder-v{version}"
        d.mkdir()
        (d / "adapter_config.json").write_text("{}")
        os.utime(d, (1_000_000 + age, 1_000_000 + age))
    (tmp_path / "ucoder-v11").mkdir()  # a download that never completed: not an adapter
    (tmp_path / ".evicting-ucoder-v2-0123abcd").mkdir()  # an eviction a crash cut short
    (tmp_path / ".adapter-staging").mkdir()  # registry.fetch_adapter's staging: left alone
    cache = AdapterCache(tmp_path, capacity=2)
    assert cache.cached() == [3, 9]  # 5 was the least recently used
    assert on_disk(tmp_path) == [".adapter-staging", "ucoder-v11", "ucoder-v3", "ucoder-v9"]


def test_adapter_cache_size_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="capacity"):
        AdapterCache(tmp_path, capacity=0)
    from services.sampler.app import SamplerConfig
    from ucoder_common.config import ConfigError

    with pytest.raises(ConfigError, match="adapter_cache_size"):
        SamplerConfig(adapter_cache_size=0).validate()
