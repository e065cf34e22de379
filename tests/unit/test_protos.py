"""The generated protobuf code is what `make proto` makes of protos/ today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "ucoder_common" / "pb"


def _generator() -> object:
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_not_stale(tmp_path: Path) -> None:
    written = _generator().generate(tmp_path)  # type: ignore[attr-defined]
    fresh = {p.name: p.read_text() for p in tmp_path.iterdir() if p.is_file()}
    committed = {p.name: p.read_text() for p in GENERATED.iterdir() if p.is_file()}
    assert len(written) == len(list(ROOT.glob("protos/ucoder/v1/*.proto"))) * 3
    stale = sorted(name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name))
    assert not stale, f"run `make proto`: stale or missing generated files {stale}"


def test_generated_imports_point_into_the_package() -> None:
    for path in GENERATED.glob("*_pb2*.py"):
        assert "from ucoder.v1 import" not in path.read_text(), path.name
