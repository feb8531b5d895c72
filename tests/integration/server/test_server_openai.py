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
