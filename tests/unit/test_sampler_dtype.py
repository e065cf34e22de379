"""The sampler's serving dtype: bfloat16 only where the CPU computes it natively."""

from __future__ import annotations

from pathlib import Path

from services.sampler.engine import BF16_CPU_FLAGS, cpu_flags, engine_dtype

AVX2_ONLY = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n"
SAPPHIRE = "flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
GRAVITON = "Features\t: fp asimd sve bf16 i8mm\n"


def test_cpu_flags_read_x86_and_arm_cpuinfo(tmp_path: Path) -> None:
    for text, expected in ((AVX2_ONLY, {"avx2", "fma"}), (SAPPHIRE, {"amx_bf16"}), (GRAVITON, {"bf16"})):
        (tmp_path / "cpuinfo").write_text(text)
        assert expected <= cpu_flags(tmp_path / "cpuinfo")
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_auto_means_float32_on_a_cpu_without_native_bfloat16() -> None:
    avx2 = frozenset({"avx2", "fma"})
    assert engine_dtype("auto", on_gpu=False, flags=avx2) == "float32"
    for flag in BF16_CPU_FLAGS:
        assert engine_dtype("auto", on_gpu=False, flags=avx2 | {flag}) == "auto"
    assert engine_dtype("auto", on_gpu=True, flags=avx2) == "auto"  # a GPU decides for itself
    assert engine_dtype("bfloat16", on_gpu=False, flags=avx2) == "bfloat16"  # asked for: kept
