"""The OpenAI API of the real server, driven by the official ``openai`` Python client."""

from __future__ import annotations

import openai
import pytest
import requests

from tests.support.model_server import RunningServer


def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.mark.parametrize(
    "server_name", ["llama_server", "godel_server", "llama_chat_server", "llamacpp_server"]
)
def test_openai_client_chat_non_streaming_returns_answer_usage_and_pod(server_name, request):
    server = request.getfixturevalue(server_name)
    model = client(server).models.list().data[0].id
    completion = client(server).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Hello, how are you today?"}],
        max_tokens=6,
        temperature=0,
    )
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage.prompt_tokens > 0
    assert 0 < completion.usage.completion_tokens <= 6
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    extension = completion.model_extra["kubechat"]
    assert extension["pod"] == "test-pod" and extension["node"] == "test-node" and extension["model"] == model


@pytest.mark.parametrize("server_name", ["llama_server", "godel_server", "llamacpp_server"])
def test_openai_client_stream_equals_non_stream_and_ends_with_usage(server_name, request):
    server = request.getfixturevalue(server_name)
    messages = [{"role": "user", "content": "what is the recipe of mayonnaise?"}]
    whole = client(server).chat.completions.create(model="", messages=messages, max_tokens=8, temperature=0)
    stream = client(server).chat.completions.create(
        model="",
        messages=messages,
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].model_extra["kubechat"]["pod"] == "test-pod"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stream_ends_with_done_marker(llama_server):
    response = requests.post(
        f"{llama_server.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "stream": True},
        stream=True,
        timeout=60,
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.iter_lines(decode_unicode=True) if line]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)


def test_openai_client_n_2_gives_two_choices_with_one_prompt_in_the_usage(llama_server):
    completion = client(llama_server).chat.completions.create(
        model="", messages=[{"role": "user", "content": "Hello"}], max_tokens=5, n=2, seed=3
    )
    assert [c.index for c in completion.choices] == [0, 1]
    single = client(llama_server).chat.completions.create(
        model="", messages=[{"role": "user", "content": "Hello"}], max_tokens=5, seed=3
    )
    assert completion.usage.prompt_tokens == single.usage.prompt_tokens
    assert completion.usage.completion_tokens > single.usage.completion_tokens / 2
    # Choice 0 uses the request's seed, so it repeats the single answer.
    assert completion.choices[0].message.content == single.choices[0].message.content


def test_openai_client_logprobs_true_gives_a_logprob_per_token_with_alternatives(llama_server):
    completion = client(llama_server).chat.completions.create(
        model="",
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=4,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    content = completion.choices[0].logprobs.content
    assert len(content) == completion.usage.completion_tokens
    assert "".join(t.token for t in content) == completion.choices[0].message.content
    for token in content:
        assert token.logprob <= 0
        assert len(token.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one.
        assert token.logprob == pytest.approx(token.top_logprobs[0].logprob)


def test_openai_client_json_mode_is_a_400_naming_response_format(llama_server):
    with pytest.raises(openai.BadRequestError) as caught:
        client(llama_server).chat.completions.create(
            model="",
            messages=[{"role": "user", "content": "Hello"}],
            response_format={"type": "json_object"},
        )
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == "response_format"


def test_streamed_n_2_with_logprobs_and_usage(llama_server):
    stream = client(llama_server).chat.completions.create(
        model="",
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=4,
        n=2,
        seed=1,
        logprobs=True,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    texts = {0: "", 1: ""}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.delta.content:
                assert choice.logprobs.content
    finishes = sorted(c.choices[0].index for c in chunks if c.choices and c.choices[0].finish_reason)
    assert finishes == [0, 1]
    assert chunks[-1].usage.completion_tokens > 0


def test_completions_take_a_list_of_prompts_with_n_and_logprobs(llama_server):
    completion = client(llama_server).completions.create(
        model="",
        prompt=["I believe the meaning of life is", "Hello"],
        max_tokens=3,
        n=2,
        temperature=0,
        logprobs=2,
    )
    assert [c.index for c in completion.choices] == [0, 1, 2, 3]
    # Greedy: both choices of a prompt agree; the two prompts are counted once each.
    assert completion.choices[0].text == completion.choices[1].text
    for choice in completion.choices:
        assert len(choice.logprobs.tokens) == len(choice.logprobs.token_logprobs)
        assert all(len(top) <= 2 for top in choice.logprobs.top_logprobs)


def test_seeded_sampling_with_top_k_and_penalties_repeats_through_the_api(llama_server):
    body = {
        "messages": [{"role": "user", "content": "Tell me about Paris"}],
        "max_tokens": 12,
        "temperature": 1.0,
        "top_k": 20,
        "top_p": 0.95,
        "seed": 42,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.5,
        "repetition_penalty": 1.2,
        "min_tokens": 6,
    }
    answers = [
        requests.post(f"{llama_server.url}/v1/chat/completions", json=body, timeout=60).json()
        for _ in range(2)
    ]
    assert answers[0]["choices"][0]["message"] == answers[1]["choices"][0]["message"]
    assert answers[0]["usage"]["completion_tokens"] >= 6


def test_min_tokens_leaves_a_greedy_answer_without_an_early_eos_unchanged(llama_server):
    """On llama.cpp ``min_tokens`` splits the answer into two requests to llama-server: no seam shows."""
    messages = [{"role": "user", "content": "Tell me about Paris"}]
    body = {"messages": messages, "max_tokens": 12, "temperature": 0}
    plain = requests.post(f"{llama_server.url}/v1/chat/completions", json=body, timeout=60).json()
    assert plain["usage"]["completion_tokens"] == 12, "the greedy answer ends at its limit, not at an EOS"
    held = requests.post(
        f"{llama_server.url}/v1/chat/completions", json={**body, "min_tokens": 5}, timeout=60
    ).json()
    assert held["choices"][0]["message"] == plain["choices"][0]["message"]
    assert held["usage"]["completion_tokens"] == 12
