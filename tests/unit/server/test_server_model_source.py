"""Where the configured model is: a directory, a GGUF file in one, or a missing path (never a Hub id)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from kubechat_server.config import ServerConfig
from kubechat_server.engine.loader import LocalModel, ModelLoadError, resolve_model
from kubechat_server.progress import ProgressReporter


def write_gguf(path: Path) -> Path:
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def resolve(model_id: str, model_file: str = "") -> LocalModel:
    return resolve_model(ServerConfig(model_id=model_id, model_file=model_file), ProgressReporter())


def test_a_gguf_file_given_as_the_model_is_its_directory_and_name(tmp_path: Path) -> None:
    write_gguf(tmp_path / "smol.Q4_1.gguf")
    assert resolve(str(tmp_path / "smol.Q4_1.gguf")) == LocalModel(str(tmp_path), "smol.Q4_1.gguf")


def test_a_directory_and_a_file_name_the_file_in_that_directory(tmp_path: Path) -> None:
    write_gguf(tmp_path / "smol.Q4_1.gguf")
    model = resolve(str(tmp_path), "smol.Q4_1.gguf")
    assert model.from_pretrained_args == {"gguf_file": "smol.Q4_1.gguf"}


def test_a_directory_alone_is_a_transformers_model(tmp_path: Path) -> None:
    model = resolve(str(tmp_path))
    assert model == LocalModel(str(tmp_path)) and model.from_pretrained_args == {}


def test_a_missing_absolute_path_is_a_missing_volume_not_a_hub_id() -> None:
    with pytest.raises(ModelLoadError, match=r"no directory /models/weights/llama .*mounted"):
        resolve("/models/weights/llama")
