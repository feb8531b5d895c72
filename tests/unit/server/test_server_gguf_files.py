"""A GGUF file is checked before transformers reads it: a wrong one is named, with what is wrong with it.

The files are real GGUF files written by the `gguf` library (llama.cpp's own writer), then damaged."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from kubechat_server.engine.gguf_files import InvalidGGUFError, check_gguf


@pytest.fixture
def gguf_file(tmp_path: Path) -> Path:
    """A small, well-formed GGUF file of a llama model with two tensors."""
    path = tmp_path / "tiny.Q8_0.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.ones((32, 16), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(16, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_well_formed_file_reports_its_architecture_and_tensors(gguf_file: Path) -> None:
    facts = check_gguf(gguf_file)
    assert (facts.architecture, facts.tensor_count) == ("llama", 2)


@pytest.mark.parametrize("keep", [40, 400, -100], ids=["in-header", "in-tensor-table", "in-weights"])
def test_a_file_cut_short_is_called_damaged_or_truncated(gguf_file: Path, keep: int) -> None:
    gguf_file.write_bytes(gguf_file.read_bytes()[:keep])
    with pytest.raises(InvalidGGUFError, match=r"tiny\.Q8_0\.gguf is a damaged or truncated GGUF file"):
        check_gguf(gguf_file)


@pytest.mark.parametrize(
    ("head", "clue"),
    [
        (b"PK\x03\x04rest-of-a-zip", "zip archive"),
        (b"<!DOCTYPE html><title>404</title>", "HTML"),
        (b"version https://git-lfs.github.com/spec/v1\n", "Git LFS pointer"),
        (b"\x00" * 64, "not b'GGUF'"),
    ],
    ids=["zip", "html", "lfs-pointer", "zeros"],
)
def test_a_file_that_is_not_gguf_says_what_it_looks_like(tmp_path: Path, head: bytes, clue: str) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(head)
    with pytest.raises(InvalidGGUFError, match="is not a GGUF file") as raised:
        check_gguf(path)
    assert clue in str(raised.value)


def test_a_missing_file_lists_the_gguf_files_that_are_there(gguf_file: Path) -> None:
    with pytest.raises(
        InvalidGGUFError, match=r"no file other\.gguf in .*GGUF files there: tiny\.Q8_0\.gguf"
    ):
        check_gguf(gguf_file.parent / "other.gguf")
