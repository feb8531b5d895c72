"""Engine choice, CPU threads from the cgroup, llama.cpp request bodies and incremental detokenising."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from kubechat_server.config import ConfigError, ServerConfig, config_from_env
from kubechat_server.engine.answer import Answer, TextDecoder
from kubechat_server.engine.llamacpp import completion_body, token_logprob
from kubechat_server.engine.loader import ModelLoadError, resolve_model
from kubechat_server.engine.requests import Finished, GenerationRequest, TextDelta
from kubechat_server.engine.sampling import SamplingParams, TokenLogprob
from kubechat_server.engine.select import choose_engine
from kubechat_server.engine.threads import cgroup_cpus, cpu_threads
from kubechat_server.progress import ProgressReporter
from tests.support.procs import python_env
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


def test_auto_engine_is_transformers_where_no_llama_server_is_installed():
    assert choose_engine("auto", is_gguf=True, device_type="cpu", has_llama_server=False) == "transformers"


def test_llama_cpp_engine_refuses_a_model_that_is_not_gguf():
    with pytest.raises(ModelLoadError, match="GGUF"):
        choose_engine("llama.cpp", is_gguf=False, device_type="cpu")


def test_engine_comes_from_env_and_an_unknown_one_is_refused():
    assert config_from_env({"KUBECHAT_ENGINE": "llama.cpp"}).engine == "llama.cpp"
    assert config_from_env({}).engine == "auto"
    with pytest.raises(ConfigError, match="engine"):
        config_from_env({"KUBECHAT_ENGINE": "vllm"})


def write_gguf(path: Path) -> Path:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_tensor("output_norm.weight", np.ones(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_is_the_file_itself_or_the_only_one_in_a_directory_without_a_config(tmp_path):
    def resolved(model_id: str):
        return resolve_model(ServerConfig(model_id=model_id), ProgressReporter()).gguf_path

    model = write_gguf(tmp_path / "m.Q4_1.gguf")
    assert resolved(str(model)) == model
    assert resolved(str(tmp_path)) == model
    write_gguf(tmp_path / "other.gguf")
    assert resolved(str(tmp_path)) is None, "two GGUF files: model.file must say which"
    (tmp_path / "other.gguf").unlink()
    (tmp_path / "config.json").write_text("{}")
    assert resolved(str(tmp_path)) is None, "a transformers directory stays one"


@pytest.mark.parametrize(
    ("cpu_max", "cpus"),
    [("200000 100000\n", 2), ("150000 100000\n", 2), ("50000 100000\n", 1), ("max 100000\n", None)],
)
def test_cgroup_quota_gives_whole_cpus(tmp_path, cpu_max, cpus):
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert cgroup_cpus(tmp_path) == cpus


@pytest.mark.parametrize(("quota", "cpus"), [("300000", 3), ("50000", 1), ("-1", None)])
def test_cgroup_v1_quota_counts_when_there_is_no_cpu_max(tmp_path, quota, cpus):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpus(tmp_path) == cpus


def test_configured_threads_win_over_the_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert cpu_threads(3, tmp_path) == 3
    assert cpu_threads(None, tmp_path) == 1
    assert cpu_threads(None, tmp_path / "absent") >= 1


@pytest.mark.parametrize(
    ("given", "policy", "childs"), [(None, "PASSIVE", "None 300"), ("ACTIVE", "ACTIVE", "ACTIVE None")]
)
def test_openmp_threads_wait_asleep_unless_the_environment_says_otherwise(given, policy, childs):
    env = python_env()
    env.pop("OMP_WAIT_POLICY", None)
    if given:
        env["OMP_WAIT_POLICY"] = given
    code = (
        "import os, kubechat_server as k; "
        "child = k.child_environment(); "
        "print(os.environ['OMP_WAIT_POLICY'], child.get('OMP_WAIT_POLICY'), child.get('GOMP_SPINCOUNT'))"
    )
    env.pop("GOMP_SPINCOUNT", None)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert run.stdout.split() == [policy, *childs.split()]


def test_llama_cpp_greedy_request_has_no_sampler_but_temperature_zero():
    body = completion_body([1, 2, 3], SamplingParams(max_new_tokens=7, do_sample=False), 7, 512)
    assert body["prompt"] == [1, 2, 3] and body["n_predict"] == 7
    assert body["temperature"] == 0.0 and body["samplers"] == ["temperature"]
    assert body["stream"] and body["return_tokens"] and "seed" not in body and "n_probs" not in body


def test_llama_cpp_sampled_request_applies_temperature_then_top_p_only():
    body = completion_body([1], SamplingParams(temperature=0.7, top_p=0.9, seed=5), 128, 512)
    assert body["samplers"] == ["temperature", "top_p"]
    assert (body["temperature"], body["top_p"], body["seed"]) == (0.7, 0.9, 5)
    # llama.cpp's own defaults (top-k 40, min-p 0.05, repeat penalty) are switched off.
    assert (body["top_k"], body["min_p"], body["repeat_penalty"]) == (0, 0.0, 1.0)


def test_llama_cpp_request_maps_top_k_penalties_logprobs_and_the_eos_ban():
    params = SamplingParams(
        temperature=0.7,
        top_k=5,
        repetition_penalty=1.2,
        presence_penalty=0.5,
        frequency_penalty=0.3,
        logprobs=0,
    )
    body = completion_body([1], params, 4, 640, ban_eos=True)
    assert body["samplers"] == ["penalties", "top_k", "temperature", "top_p"]
    assert (body["top_k"], body["repeat_penalty"], body["repeat_last_n"]) == (5, 1.2, 640)
    assert (body["presence_penalty"], body["frequency_penalty"]) == (0.5, 0.3)
    assert body["n_probs"] == 1, "logprobs 0 still wants the chosen token's"
    assert body["ignore_eos"] is True and body["n_predict"] == 4
    greedy = completion_body([1], SamplingParams(do_sample=False, repetition_penalty=1.3), 4, 640)
    assert greedy["samplers"] == ["penalties", "temperature"], "penalties apply before the argmax"


def test_llama_cpp_probabilities_become_token_logprobs_with_the_asked_alternatives():
    entry = {
        "id": 7,
        "logprob": -0.5,
        "top_logprobs": [{"id": 7, "logprob": -0.5}, {"id": 3, "logprob": -1.5}],
    }
    assert token_logprob(entry, 1) == TokenLogprob(7, -0.5, ((7, -0.5),))
    assert token_logprob(entry, 0) == TokenLogprob(7, -0.5, ())


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


def run_answer(tokenizer, text: str, *, logprobs: bool = False, **request) -> list:
    """Feed ``text``'s tokens (with made-up logprobs when asked) through an ``Answer``; its events."""
    ids = tokenizer.encode(text, add_special_tokens=False)

    async def run() -> list:
        params = SamplingParams(max_new_tokens=100, logprobs=1 if logprobs else None)
        generation = GenerationRequest(
            prompt_ids=[1], params=params, loop=asyncio.get_running_loop(), deadline=1e12, **request
        )
        answer = Answer(generation, tokenizer, frozenset({tokenizer.eos_token_id}))
        for i, token in enumerate([*ids, tokenizer.eos_token_id]):
            answer.add(token, TokenLogprob(token, -float(i)) if logprobs else None)
        assert not answer.add(ids[0]), "a finished answer takes no more tokens"
        return [event async for event in generation.stream()]

    return asyncio.run(run())


def test_answer_hides_the_scratchpad_from_stream_and_result(tokenizer):
    events = run_answer(
        tokenizer,
        "<scratchpad>secret plan</scratchpad>\nHello there",
        streams_text=True,
        hide_scratchpad=True,
    )
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert events[-1].reason == "stop" and events[-1].text == "Hello there"
    assert "".join(deltas) == "Hello there" and not any("secret" in d or "<" in d for d in deltas)


def test_answer_streams_each_tokens_logprob_once_and_returns_them_all(tokenizer):
    events = run_answer(tokenizer, "Hello there, friend", streams_text=True, logprobs=True)
    streamed = [lp for e in events if isinstance(e, TextDelta) for lp in e.logprobs]
    finished = events[-1]
    assert len(finished.logprobs) == finished.completion_tokens
    assert streamed == list(finished.logprobs), "every token's logprob reaches the stream, in order"


def test_an_answer_cut_by_its_limit_mid_character_ends_as_the_whole_decode_shows_it(tokenizer):
    ids = tokenizer.encode("café 你好", add_special_tokens=False)

    async def finished_text(limit: int) -> str:
        request = GenerationRequest(
            prompt_ids=[1],
            params=SamplingParams(max_new_tokens=limit),
            loop=asyncio.get_running_loop(),
            deadline=1e12,
        )
        answer = Answer(request, tokenizer, frozenset({tokenizer.eos_token_id}))
        for token in ids[:limit]:
            answer.add(token)
        return (await request.result()).text

    for limit in range(1, len(ids) + 1):
        expected = tokenizer.decode(ids[:limit], skip_special_tokens=True)
        assert asyncio.run(finished_text(limit)) == expected
