"""What this CPU can do that decides which kernels are fast (named beside every timing, too).

The int8 image tower is photosift's default only where the CPU multiplies 8-bit integers
natively (VNNI: AVX-512 VNNI, or AVX-VNNI on newer desktop chips): measured 2.3-2.7x the fp32
tower there, against 1.7x on AVX2 alone (and 8-bit weights would saturate AVX2's kernel; see
engine.models.quantize). Linux reports the flags in /proc/cpuinfo; elsewhere numpy's own CPU
detection is asked, which knows AVX-512 VNNI but not AVX-VNNI (those CPUs then keep fp32 by
default, and `"int8": true` in settings.json turns it on).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

SHOWN = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile")


@functools.cache
def flags() -> frozenset[str]:
    """The CPU's feature flags (lower case, as /proc/cpuinfo names them)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as found
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as found
    names = {"AVX2": "avx2", "AVX512F": "avx512f", "AVX512VNNI": "avx512_vnni", "AVX512BF16": "avx512_bf16"}
    return frozenset(v for k, v in names.items() if found.get(k))


def has_vnni() -> bool:
    """Native 8-bit integer dot products (AVX-512 VNNI or AVX-VNNI)."""
    return bool({"avx512_vnni", "avx_vnni"} & flags())


def describe() -> str:
    """The flags that decide ONNX Runtime's kernels here, for a benchmark's report."""
    shown = [f for f in SHOWN if f in flags()]
    return ", ".join(shown) or f"{platform.machine()} (none of {', '.join(SHOWN)})"
