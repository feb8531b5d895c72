"""Hostile input against the frontend's JSON API (it publishes no OpenAPI document, so Hypothesis generates
the bodies): every field of every endpoint gets the wrong type, huge or odd text, or goes missing. No
request may get a 500 or a non-JSON error, and the frontend keeps serving."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.frontend import Keys, ServedModel, make_keys, run_frontend, served_model

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("KUBECHAT_FAULT_EXAMPLES", "20")) * 3

ODD_TEXT = st.one_of(
    st.text(max_size=50),
    st.sampled_from(["", " ", "\x00", "../../etc/passwd", "<script>alert(1)</script>", "[INST]", "x" * 5000]),
)
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
    max_leaves=6,
)
MESSAGE = st.one_of(
    ANY_JSON, st.lists(st.fixed_dictionaries({"role": ANY_JSON, "content": ANY_JSON}), max_size=3)
)


def maybe(keys: dict) -> st.SearchStrategy[dict]:
    """Objects with any subset of `keys`, each valued by its strategy, plus a stray key sometimes."""
    return st.fixed_dictionaries({}, optional={**keys, "stray": ANY_JSON})


REQUESTS = st.one_of(
    st.tuples(
        st.sampled_from(["/api/chat", "/api/chat/stream"]),
        maybe({"message": ANY_JSON, "session_id": ANY_JSON, "model": ANY_JSON, "persona": ANY_JSON}),
    ),
    st.tuples(
        st.just("/v1/chat/completions"),
        maybe({"messages": MESSAGE, "model": ANY_JSON, "stream": ANY_JSON, "max_tokens": ANY_JSON}),
    ),
    st.tuples(st.just("/api/chat"), ANY_JSON),  # not even an object
)


def _json_error(response: httpx.Response) -> bool:
    try:
        return "error" in response.json()
    except ValueError:
        return False


@pytest.fixture(scope="module")
def frontend(tmp_path_factory) -> Iterator[tuple[str, Keys, ServedModel]]:
    directory: Path = tmp_path_factory.mktemp("hostile-frontend")
    keys = make_keys(directory)
    with served_model("llama", "llama", KUBECHAT_MAX_NEW_TOKENS="2") as model:
        settings_ = {
            "STORE": f"sqlite:///{directory}/history.db",
            "MODELS": [{"name": model.name, "url": model.url}],
            "API_KEYS_FILE": keys.file, "ADMIN_KEY": keys.admin_key, "SECRET_KEY": "s",
            "RATE_LIMIT": 1_000_000,
        }  # fmt: skip
        with run_frontend(settings_, directory / "frontend.log") as running:
            yield running.url, keys, model


def test_generated_api_requests_never_get_a_500_and_errors_are_json(frontend) -> None:
    url, keys, _ = frontend
    bad: list[str] = []
    sent: list[int] = []
    with httpx.Client(base_url=url, headers=keys.user_headers, timeout=60) as client:

        @given(request=REQUESTS, session=st.one_of(ODD_TEXT, st.just("x" * 300)))
        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def send(request, session) -> None:
            sent.append(1)
            path, body = request
            session = quote(session, safe="")
            for response in (
                client.post(path, json=body),
                client.get(f"/api/sessions/{session}"),
                client.delete(f"/api/sessions/{session}"),
            ):
                if response.status_code >= 500 and response.status_code not in (502, 503, 504):
                    bad.append(f"{response.request.method} {response.request.url.path} {body!r:.300} -> "
                               f"{response.status_code} {response.text[:300]}")  # fmt: skip
                elif (
                    response.status_code >= 400 and response.status_code != 414 and not _json_error(response)
                ):
                    # (414, a request line over 4 KiB, is gunicorn's own answer before the app sees it.)
                    bad.append(f"{response.request.method} {path} {body!r:.300} -> {response.status_code} "
                               f"without a JSON error: {response.text[:200]}")  # fmt: skip

        send()
    print(f"{len(sent)} generated cases, {3 * len(sent)} requests")
    assert not bad, "\n".join(bad[:20])
    assert httpx.get(f"{url}/health", timeout=5).status_code == 200


GATEWAY_REQUESTS = st.one_of(
    st.tuples(
        st.just("/create_npc/"),
        maybe({"char_descr": ANY_JSON, "world_descr": ANY_JSON, "has_scratchpad": ANY_JSON}),
    ),
    st.tuples(
        st.just("/chat_npc/"),
        maybe({"chat_id": ANY_JSON, "npc_id": ANY_JSON, "message": ANY_JSON, "model": ANY_JSON}),
    ),
    st.tuples(st.just("/users/"), maybe({"username": ANY_JSON, "password": ANY_JSON, "api_key": ANY_JSON})),
    st.tuples(st.sampled_from(["/create_npc/", "/chat_npc/", "/users/"]), ANY_JSON),
)


def test_generated_seed_gateway_requests_never_get_a_500_and_errors_are_json(frontend) -> None:
    url, keys, model = frontend
    admin = {"Authorization": keys.admin_key}  # raw, as the seed sends it
    user = httpx.post(
        f"{url}/users/", json={"username": "hostile", "password": "long enough"}, headers=admin, timeout=30
    ).json()
    npc = httpx.post(
        f"{url}/create_npc/",
        json={"char_descr": "a guard", "world_descr": "a gate", "has_scratchpad": False},
        headers={"Authorization": user["api_key"]},
        timeout=30,
    ).json()["npc_id"]
    bad: list[str] = []
    with httpx.Client(base_url=url, timeout=60) as client:

        @given(request=GATEWAY_REQUESTS, as_admin=st.booleans(), chat_id=ODD_TEXT, use_npc=st.booleans())
        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def send(request, as_admin, chat_id, use_npc) -> None:
            path, body = request
            if use_npc and isinstance(body, dict) and path == "/chat_npc/":
                body = {**body, "npc_id": npc, "model": model.name}
            headers = admin if as_admin else {"Authorization": user["api_key"]}
            chat = quote(chat_id, safe="")
            for response in (
                client.post(path, json=body, headers=headers),
                client.post("/end_chat_session/", params={"chat_id": chat_id}, headers=headers),
                client.get(f"/chat/{quote(user['api_key'], safe='')}/{chat}/history", headers=admin),
            ):
                if response.status_code >= 500 and response.status_code not in (502, 503, 504):
                    bad.append(f"{response.request.method} {response.request.url.path} {body!r:.300} -> "
                               f"{response.status_code} {response.text[:300]}")  # fmt: skip
                elif (
                    response.status_code >= 400 and response.status_code != 414 and not _json_error(response)
                ):
                    bad.append(f"{path} {body!r:.300} -> {response.status_code}: {response.text[:200]}")

        send()
    assert not bad, "\n".join(bad[:20])
    assert httpx.get(f"{url}/health", timeout=5).status_code == 200
