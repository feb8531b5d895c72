"""GGUF files (llama.cpp's format, what Ollama users have): checked before ``transformers`` reads them.

``transformers`` dequantises a GGUF file into a regular model, taking config, tokenizer and chat template from
the file's metadata. Given a file that is not GGUF, or one cut short by an interrupted download or copy, it
fails deep inside ``numpy`` with a message that names neither the file nor the problem; this check says
which file is wrong and how, so the pod's status (``ModelLoadFailed``) tells the user what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

GGUF_MAGIC = b"GGUF"
GGUF_SUFFIX = ".gguf"
# What a wrong file most often is, by its first bytes: a clue for the status message.
KNOWN_HEADS = {
    b"PK\x03\x04": "a zip archive (a PyTorch .bin checkpoint?)",
    b"<": "HTML or XML (an error page saved in place of the file?)",
    b"{": "JSON (a config or a safetensors index?)",
    b"version https://git-lfs": "a Git LFS pointer, not the file it points to",
}


class InvalidGGUFError(ValueError):
    """The file is missing, not GGUF, damaged, or of an architecture ``transformers`` cannot load."""


@dataclass(frozen=True)
class GGUFFacts:
    """What the header says about the model in a GGUF file."""

    architecture: str
    tensor_count: int


def check_gguf(path: Path) -> GGUFFacts:
    """Read the header and tensor table of ``path``; raise ``InvalidGGUFError`` saying what is wrong."""
    if not path.is_file():
        present = sorted(p.name for p in path.parent.glob(f"*{GGUF_SUFFIX}")) if path.parent.is_dir() else []
        where = f"GGUF files there: {', '.join(present)}" if present else "no GGUF file is there"
        raise InvalidGGUFError(f"no file {path.name} in {path.parent} ({where})")
    size = path.stat().st_size
    with open(path, "rb") as stream:
        head = stream.read(32)
    if not head.startswith(GGUF_MAGIC):
        clues = [f", it looks like {what}" for start, what in KNOWN_HEADS.items() if head.startswith(start)]
        clue = clues[0] if clues else ""
        raise InvalidGGUFError(
            f"{path} is not a GGUF file: it begins with {head[:8]!r}, not {GGUF_MAGIC!r}{clue}"
        )
    from gguf import GGUFReader  # imported here: only GGUF models need it

    try:
        reader = GGUFReader(path)
    except Exception as exc:  # the reader raises whatever numpy raises on bad bytes (a failed reshape...)
        raise InvalidGGUFError(
            f"{path} is a damaged or truncated GGUF file ({size} bytes; an interrupted download or copy?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    architecture = _string_field(reader, "general.architecture")
    return GGUFFacts(architecture=architecture, tensor_count=len(reader.tensors))


def _string_field(reader, key: str) -> str:
    field = reader.fields.get(key)
    if field is None or not field.data:
        return ""
    return bytes(field.parts[field.data[0]]).decode("utf-8", errors="replace")
