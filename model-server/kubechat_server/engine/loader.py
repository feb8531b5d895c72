"""Loading a model: from a local directory or the Hub, with the ``transformers`` Auto classes.

A model is a transformers directory (config, tokenizer, safetensors) or one GGUF file, whose metadata gives
config, tokenizer and chat template (``transformers`` dequantises it; engine/gguf_files.py checks it first).

The architecture (seq2seq or causal) comes from the model's config unless the ChatModel forces it; the dtype
follows the device (bf16/fp16 on a GPU, bf16 on a CPU that computes it natively, else fp32). Download
progress is measured from the bytes that arrive in the Hub cache, so it works whatever progress bars
``huggingface_hub`` draws.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import torch

from kubechat_server.config import ServerConfig
from kubechat_server.progress import ProgressReporter

log = logging.getLogger("kubechat_server.loader")

HUB_FILES = ["*.json", "*.model", "*.txt", "*.tiktoken", "*.jinja"]


class ModelLoadError(RuntimeError):
    """The model cannot be loaded with this configuration."""


@dataclass
class LoadedModel:
    """A model ready to generate, and the facts the engine and the prompt formats need about it."""

    model: torch.nn.Module
    tokenizer: object
    seq2seq: bool
    model_type: str
    device: torch.device
    dtype: torch.dtype
    eos_token_ids: frozenset[int]
    pad_token_id: int
    decoder_start_token_id: int | None
    max_positions: int | None

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def generation_config(self):
        """The model's ``generation_config.json`` (its sampling defaults), or None."""
        return getattr(self.model, "generation_config", None)

    def device_facts(self) -> dict:
        """Device and GPU facts for ``/healthz``."""
        facts = {"device": str(self.device), "dtype": str(self.dtype).removeprefix("torch.")}
        if self.device.type == "cuda":
            index = self.device.index or 0
            facts["gpu"] = {
                "name": torch.cuda.get_device_name(index),
                "memoryAllocatedBytes": torch.cuda.memory_allocated(index),
                "memoryTotalBytes": torch.cuda.get_device_properties(index).total_memory,
            }
        return facts


def choose_device(requested: str) -> torch.device:
    """``auto`` picks the GPU when there is one."""
    if requested != "auto":
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def choose_dtype(device: torch.device, requested: str = "auto") -> torch.dtype:
    """The configured dtype, or for ``auto``: bf16 on GPUs that have it, fp16 on older ones; on CPU bf16
    where the CPU computes it natively (AVX512-BF16 or AMX: 1.7x float32's speed at batch 1, 1.46x at 32,
    measured for issue 14), else fp32 (emulated half precision is slower than fp32)."""
    if requested != "auto":
        return DTYPES[requested]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else torch.float32


def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU's flags include native bfloat16 arithmetic (Linux)."""
    try:
        with open(cpuinfo) as info:
            flags = next((line.split() for line in info if line.startswith("flags")), [])
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def hub_token() -> str | None:
    """The gated-model token from the ChatModel's Secret (``HF_TOKEN``)."""
    return os.environ.get("HF_TOKEN") or None


@dataclass(frozen=True)
class LocalModel:
    """A model on this machine: a transformers directory, or a GGUF file (``gguf_file``) in ``directory``."""

    directory: str
    gguf_file: str | None = None

    @property
    def gguf_path(self) -> Path | None:
        return Path(self.directory) / self.gguf_file if self.gguf_file else None

    @property
    def from_pretrained_args(self) -> dict:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}


def resolve_model(config: ServerConfig, reporter: ProgressReporter) -> LocalModel:
    """Where the configured model is on this machine, downloading it from the Hub first if it is not local.

    ``model_id`` is a Hub repo, a directory, or a ``.gguf`` file; ``model_file`` names a GGUF file inside the
    repo or directory (without it, a directory with no ``config.json`` and exactly one GGUF file means that).
    """
    model_id, revision = config.model_id, config.model_revision or None
    local = Path(model_id)
    if local.is_file() and not config.model_file:
        return _checked_gguf(LocalModel(str(local.parent), local.name))
    if local.is_dir():
        return _checked_gguf(LocalModel(model_id, config.model_file or _only_gguf(local)))
    if local.is_absolute() or model_id.startswith("."):
        raise ModelLoadError(f"no directory {model_id} (a path, not a Hub id: is its volume mounted?)")
    if config.model_file:
        downloaded = Path(download_hub_file(model_id, config.model_file, reporter, revision))
        return _checked_gguf(LocalModel(str(downloaded.parent), downloaded.name))
    return LocalModel(download_hub_snapshot(model_id, reporter, revision))


def _only_gguf(directory: Path) -> str | None:
    """A directory without a transformers config that holds exactly one GGUF file names that file."""
    if (directory / "config.json").exists():
        return None
    files = sorted(directory.glob("*.gguf"))
    return files[0].name if len(files) == 1 else None


def _checked_gguf(model: LocalModel) -> LocalModel:
    if model.gguf_file:
        from kubechat_server.engine.gguf_files import InvalidGGUFError, check_gguf

        try:
            facts = check_gguf(Path(model.directory) / model.gguf_file)
        except InvalidGGUFError as exc:
            raise ModelLoadError(str(exc)) from exc
        log.info("%s: GGUF, %s, %d tensors", model.gguf_file, facts.architecture, facts.tensor_count)
    return model


def download_hub_snapshot(model_id: str, reporter: ProgressReporter, revision: str | None = None) -> str:
    """The Hub snapshot directory of a transformers model (at ``revision``), downloaded if needed."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_OFFLINE

    if HF_HUB_OFFLINE:
        # Offline: only what the cache (the PVC) already holds.
        return snapshot_download(model_id, revision=revision, token=hub_token(), local_files_only=True)
    siblings = _hub_files(model_id, revision)
    weights = ["*.safetensors"] if any(name.endswith(".safetensors") for name in siblings) else ["*.bin"]
    patterns = HUB_FILES + weights + ["tokenizer*"]
    total = sum(size for name, size in siblings.items() if _matches(name, patterns))
    with _watching(model_id, total, reporter):
        return snapshot_download(model_id, revision=revision, token=hub_token(), allow_patterns=patterns)


def download_hub_file(model_id: str, filename: str, reporter: ProgressReporter, revision: str | None) -> str:
    """The local path of one file (a GGUF) of a Hub repo, downloaded if needed."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.constants import HF_HUB_OFFLINE

    if HF_HUB_OFFLINE:
        # Offline: only what the cache (the PVC) already holds.
        return hf_hub_download(
            model_id, filename, revision=revision, token=hub_token(), local_files_only=True
        )
    siblings = _hub_files(model_id, revision)
    if filename not in siblings:
        ggufs = sorted(name for name in siblings if name.endswith(".gguf"))
        raise ModelLoadError(
            f"the Hub repo {model_id} has no file {filename}; its GGUF files: {', '.join(ggufs) or 'none'}"
        )
    with _watching(model_id, siblings[filename], reporter):
        return hf_hub_download(model_id, filename, revision=revision, token=hub_token())


def _hub_files(model_id: str, revision: str | None) -> dict[str, int]:
    """File names and sizes of a Hub repo."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(model_id, revision=revision, files_metadata=True, token=hub_token())
    return {s.rfilename: s.size or 0 for s in info.siblings or []}


@contextmanager
def _watching(model_id: str, total: int, reporter: ProgressReporter) -> Iterator[None]:
    """Report download progress while the body downloads into the Hub cache."""
    from huggingface_hub.constants import HF_HUB_CACHE

    repo_dir = Path(HF_HUB_CACHE) / f"models--{model_id.replace('/', '--')}"
    watcher = DownloadWatcher(repo_dir, total, reporter, model_id)
    watcher.start()
    try:
        yield
    finally:
        watcher.stop()


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch(name, p) for p in patterns)


class DownloadWatcher:
    """Reports download progress by measuring the bytes in the model's cache folder once a second."""

    def __init__(
        self, folder: Path, total: int, reporter: ProgressReporter, label: str, interval: float = 1.0
    ):
        self.folder, self.total, self.reporter, self.label = folder, total, reporter, label
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="download-watcher", daemon=True)

    def start(self) -> None:
        self.reporter.update("downloading", self.label, 0, self.total)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.report()

    def report(self) -> None:
        done = min(folder_bytes(self.folder), self.total) if self.total else folder_bytes(self.folder)
        self.reporter.update("downloading", self.label, done, self.total)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.report()


def folder_bytes(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (partial downloads included, links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                try:
                    total += os.path.getsize(path)
                except OSError:
                    continue  # a partial file renamed while we looked
    return total


def load_model(
    config: ServerConfig, reporter: ProgressReporter, local: LocalModel | None = None
) -> LoadedModel:
    """Load the configured model (already on this machine as ``local``, else resolved here) and tokenizer;
    progress goes to ``reporter``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    if not config.model_id:
        raise ModelLoadError("no model configured: set KUBECHAT_MODEL_ID or --model")
    local = local or resolve_model(config, reporter)
    path, extra = local.directory, local.from_pretrained_args
    reporter.update("loading", f"loading {local.gguf_file or config.model_id}")
    try:
        model_config = AutoConfig.from_pretrained(path, token=hub_token(), **extra)
    except ValueError as exc:
        if not local.gguf_file:
            raise
        # e.g. "GGUF model with architecture mamba is not supported yet."
        raise ModelLoadError(f"transformers cannot load {local.gguf_file}: {exc}") from exc
    detected = "seq2seq" if getattr(model_config, "is_encoder_decoder", False) else "causal"
    if config.architecture not in ("auto", detected):
        raise ModelLoadError(
            f"the model's config says {detected} ({model_config.model_type}), "
            f"but the ChatModel asks for {config.architecture}"
        )
    seq2seq = detected == "seq2seq"
    device = choose_device(config.device)
    dtype = choose_dtype(device, config.dtype)
    auto_class = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    model = auto_class.from_pretrained(path, dtype=dtype, token=hub_token(), **extra).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(path, token=hub_token(), **extra)
    generation = getattr(model, "generation_config", None)
    eos = {tokenizer.eos_token_id, getattr(generation, "eos_token_id", None)}
    eos_ids = frozenset(i for e in eos for i in (e if isinstance(e, list) else [e]) if i is not None)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids, default=0)
    max_positions = getattr(model_config, "max_position_embeddings", None) or getattr(
        model_config, "n_positions", None
    )
    log.info(
        "loaded %s (%s, %s) on %s as %s", config.model_id, model_config.model_type, detected, device, dtype
    )
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        seq2seq=seq2seq,
        model_type=model_config.model_type,
        device=device,
        dtype=dtype,
        eos_token_ids=eos_ids,
        pad_token_id=pad,
        decoder_start_token_id=getattr(model_config, "decoder_start_token_id", None),
        max_positions=max_positions,
    )
