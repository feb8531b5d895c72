"""Configuration from the ChatModel's ConfigMap (env), CLI flags over it, refusal of unusable values."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kubechat_server.config import ConfigError, Persona, config_from_env
from tests.support.procs import python_env


def test_contract_env_vars_fill_the_config():
    config = config_from_env(
        {
            "KUBECHAT_MODEL_ID": "microsoft/GODEL-v1_1-base-seq2seq",
            "KUBECHAT_MODEL_REVISION": "v1.1",
            "KUBECHAT_MODEL_FILE": "GODEL.Q8_0.gguf",
            "KUBECHAT_PROMPT_FORMAT": "godel",
            "KUBECHAT_INSTRUCTION": "respond empathically",
            "KUBECHAT_PERSONA_CHARACTER": "a tavern keeper",
            "KUBECHAT_PERSONA_SCRATCHPAD": "true",
            "KUBECHAT_MAX_NEW_TOKENS": "64",
            "KUBECHAT_TEMPERATURE": "0.7",
            "KUBECHAT_DO_SAMPLE": "false",
            "KUBECHAT_STOP": '["\\nUser:"]',
            "KUBECHAT_MAX_BATCH_SIZE": "32",
            "POD_NAME": "godel-abc",
            "NODE_NAME": "gpu-0",
        }
    )
    assert config.model_name == "GODEL-v1_1-base-seq2seq" and config.model_revision == "v1.1"
    assert config.model_file == "GODEL.Q8_0.gguf"
    assert config.persona == Persona(character="a tavern keeper", scratchpad=True)
    assert (config.max_new_tokens, config.temperature, config.do_sample) == (64, 0.7, False)
    assert config.stop == ("\nUser:",) and config.max_batch_size == 32
    assert (config.pod_name, config.node_name) == ("godel-abc", "gpu-0")


def test_unset_values_keep_defaults_and_served_name_wins():
    config = config_from_env({"KUBECHAT_MODEL_ID": "/cache/llama", "KUBECHAT_SERVED_MODEL_NAME": "llama"})
    assert config.model_name == "llama"
    assert (config.max_batch_size, config.max_queue_delay_ms, config.max_queue) == (16, 10.0, 256)
    assert (config.max_input_tokens, config.request_timeout_s, config.port) == (1024, 120.0, 8080)
    assert config.temperature is None and config.admin_token is None and config.progress_configmap is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("KUBECHAT_MAX_BATCH_SIZE", "many", "must be an integer"),
        ("KUBECHAT_MAX_BATCH_SIZE", "0", "must be positive"),
        ("KUBECHAT_DO_SAMPLE", "maybe", "true or false"),
        ("KUBECHAT_STOP", "not json", "JSON list"),
        ("KUBECHAT_STOP", '[""]', "non-empty"),
        ("KUBECHAT_PROMPT_FORMAT", "alpaca", "prompt format"),
        ("KUBECHAT_ARCHITECTURE", "rnn", "architecture"),
        ("KUBECHAT_MODEL_FILE", "model.safetensors", "GGUF"),
    ],
)
def test_unusable_values_are_refused_naming_the_setting(name, value, message):
    with pytest.raises(ConfigError, match=message):
        config_from_env({"KUBECHAT_MODEL_ID": "m", name: value})


def test_cli_refuses_a_bad_config_with_exit_code_2():
    result = subprocess.run(
        [sys.executable, "-m", "kubechat_server", "--model", "m", "--max-batch-size", "0"],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "max_batch_size must be positive" in result.stderr


def test_cli_help_lists_the_contract_flags():
    result = subprocess.run(
        [sys.executable, "-m", "kubechat_server", "--help"], env=python_env(), capture_output=True, text=True
    )
    assert result.returncode == 0
    for flag in ("--model", "--port", "--prompt-format", "--max-batch-size", "--drain-seconds"):
        assert flag in result.stdout
