"""The image's portable llama-server runs only on CPUs with the instructions it was built for; elsewhere
`engine: auto` serves a GGUF model with transformers and `engine: llama.cpp` says why it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubechat_server.engine.llamacpp import LlamaServerError, find_llama_server, missing_cpu_flags

HASWELL = "processor\t: 0\nflags\t\t: fpu sse sse2 sse4_2 avx avx2 bmi2 fma f16c\n"
OLD_ATOM = "processor\t: 0\nflags\t\t: fpu sse sse2 ssse3 sse4_2\n"


def _binary(tmp_path: Path, flags: str | None) -> str:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    if flags is not None:
        (tmp_path / "llama-server.cpu-flags").write_text(flags + "\n")
    return str(binary)


def _cpu(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_a_cpu_with_every_flag_the_portable_build_needs_runs_it(tmp_path: Path) -> None:
    binary = _binary(tmp_path, "sse4_2 avx avx2 bmi2 fma f16c")
    assert missing_cpu_flags(binary, _cpu(tmp_path, HASWELL)) == []
    assert find_llama_server(binary, _cpu(tmp_path, HASWELL)) == binary


def test_a_cpu_without_avx2_is_refused_naming_what_it_lacks(tmp_path: Path) -> None:
    binary = _binary(tmp_path, "sse4_2 avx avx2 bmi2 fma f16c")
    assert missing_cpu_flags(binary, _cpu(tmp_path, OLD_ATOM)) == ["avx", "avx2", "bmi2", "fma", "f16c"]
    with pytest.raises(LlamaServerError, match="this CPU lacks avx, avx2.*engine: transformers"):
        find_llama_server(binary, _cpu(tmp_path, OLD_ATOM))


def test_a_native_build_or_an_unreadable_cpuinfo_is_not_second_guessed(tmp_path: Path) -> None:
    assert missing_cpu_flags(_binary(tmp_path, None), _cpu(tmp_path, OLD_ATOM)) == []
    binary = _binary(tmp_path, "avx2")
    assert missing_cpu_flags(binary, tmp_path / "no-cpuinfo") == []
    assert missing_cpu_flags(binary, _cpu(tmp_path, "processor\t: 0\nFeatures\t: neon\n")) == []
