"""Engine choice, CPU threads from the cgroup, llama.cpp request bodies and incremental detokenising."""

from __future__ import annotations

import asyncio

import pytest

from kubechat_server.config import ConfigError, config_from_env
from kubechat_server.engine.answer import Answer, TextDecoder
from kubechat_server.engine.llamacpp import completion_body, find_gguf
from kubechat_server.engine.loader import ModelLoadError
from kubechat_server.engine.requests import Finished, GenerationRequest, TextDelta
from kubechat_server.engine.sampling import SamplingParams
from kubechat_server.engine.select import choose_engine
from kubechat_server.engine.threads import cgroup_cpus, cpu_threads
from tests.support.tiny_models import tiny_model_dir


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir("llama"))


def test_auto_engine_is_llama_cpp_for_a_gguf_on_cpu_only():
    assert choose_engine("auto", is_gguf=True, device_type="cpu") == "llama.cpp"
    assert choose_engine("auto", is_gguf=True, device_type="cuda") == "transformers"
    assert choose_engine("auto", is_gguf=False, device_type="cpu") == "transformers"
    assert choose_engine("transformers", is_gguf=True, device_type="cpu") == "transformers"


def test_llama_cpp_engine_refuses_a_model_that_is_not_gguf():
    with pytest.raises(ModelLoadError, match="GGUF"):
        choose_engine("llama.cpp", is_gguf=False, device_type="cpu")


def test_engine_comes_from_env_and_an_unknown_one_is_refused():
    assert config_from_env({"KUBECHAT_ENGINE": "llama.cpp"}).engine == "llama.cpp"
    assert config_from_env({}).engine == "auto"
    with pytest.raises(ConfigError, match="engine"):
        config_from_env({"KUBECHAT_ENGINE": "vllm"})


def test_gguf_is_the_file_itself_or_the_only_one_in_a_directory(tmp_path):
    model = tmp_path / "m.Q4_1.gguf"
    model.write_bytes(b"GGUF")
    assert find_gguf(str(model)) == model
    assert find_gguf(str(tmp_path)) == model
    (tmp_path / "other.gguf").write_bytes(b"GGUF")
    assert find_gguf(str(tmp_path)) is None
    assert find_gguf(str(tmp_path / "missing.gguf")) is None


@pytest.mark.parametrize(
    ("cpu_max", "cpus"),
    [("200000 100000\n", 2), ("150000 100000\n", 2), ("50000 100000\n", 1), ("max 100000\n", None)],
)
def test_cgroup_quota_gives_whole_cpus(tmp_path, cpu_max, cpus):
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert cgroup_cpus(tmp_path / "cpu.max") == cpus


def test_configured_threads_win_over_the_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert cpu_threads(3, tmp_path / "cpu.max") == 3
    assert cpu_threads(None, tmp_path / "cpu.max") == 1
    assert cpu_threads(None, tmp_path / "absent") >= 1


def test_llama_cpp_greedy_request_has_no_sampler_but_temperature_zero():
    body = completion_body([1, 2, 3], SamplingParams(max_new_tokens=7, do_sample=False))
    assert body["prompt"] == [1, 2, 3] and body["n_predict"] == 7
    assert body["temperature"] == 0.0 and body["samplers"] == ["temperature"]
    assert body["stream"] and body["return_tokens"] and "seed" not in body


def test_llama_cpp_sampled_request_applies_temperature_then_top_p_only():
    body = completion_body([1], SamplingParams(temperature=0.7, top_p=0.9, seed=5))
    assert body["samplers"] == ["temperature", "top_p"]
    assert (body["temperature"], body["top_p"], body["seed"]) == (0.7, 0.9, 5)
    # llama.cpp's own defaults (top-k 40, min-p 0.05, repeat penalty) are switched off.
    assert (body["top_k"], body["min_p"], body["repeat_penalty"]) == (0, 0.0, 1.0)


def test_incremental_text_equals_decoding_the_whole_answer(tokenizer):
    ids = tokenizer.encode("Héllo wörld, the café — naïve 你好!", add_special_tokens=False)
    decoder = TextDecoder(tokenizer)
    texts = [decoder.add(token) for token in ids]
    assert decoder._stream is not None, "a fast tokenizer decodes incrementally"
    assert texts[-1] == tokenizer.decode(ids, skip_special_tokens=True)
    assert all("\ufffd" not in text for text in texts), "half characters are never shown"


def test_answer_streams_deltas_that_add_up_and_stops_at_a_stop_string(tokenizer):
    ids = tokenizer.encode("Hello there. STOP and more", add_special_tokens=False)

    async def run() -> list:
        request = GenerationRequest(
            prompt_ids=[1],
            params=SamplingParams(max_new_tokens=100, stop=("STOP",)),
            loop=asyncio.get_running_loop(),
            deadline=1e12,
            streams_text=True,
        )
        answer = Answer(request, tokenizer, frozenset({tokenizer.eos_token_id}))
        going = [answer.add(token) for token in ids]
        assert False in going, "the answer ended at the stop string"
        return [event async for event in request.stream()]

    events = asyncio.run(run())
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.reason == "stop"
    assert finished.text == "Hello there. "
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == finished.text
