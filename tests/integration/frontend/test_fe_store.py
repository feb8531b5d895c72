"""The storage layer on real SQLite, PostgreSQL and Redis: the same behaviour from every backend."""

from __future__ import annotations

import threading

import pytest

from kubechat_frontend.store import Conversation, Message, open_store


@pytest.fixture
def open_two(store_config):
    """Two independent store instances on one database, as two frontend replicas would have."""
    stores = [open_store(store_config["STORE"], store_config["STORE_PASSWORD"]) for _ in range(2)]
    yield stores
    for store in stores:
        store.close()


def test_a_conversation_written_by_one_replica_is_read_by_another(open_two):
    first, second = open_two
    first.create_conversation(Conversation("c1", owner="page", model="godel", persona="bard"))
    first.add_messages(
        "c1", [Message("user", "hello <b>"), Message("assistant", "hi", pod="p-1", node="n-1")]
    )
    first.add_messages("c1", [Message("user", "again"), Message("assistant", "yes")])

    conversation = second.get_conversation("c1")
    assert (conversation.owner, conversation.model, conversation.persona) == ("page", "godel", "bard")
    history = second.messages("c1")
    assert [(m.role, m.content) for m in history] == [
        ("user", "hello <b>"), ("assistant", "hi"), ("user", "again"), ("assistant", "yes"),
    ]  # fmt: skip
    assert (history[1].pod, history[1].node) == ("p-1", "n-1")


def test_ending_a_conversation_deletes_it_and_its_messages(open_two):
    first, second = open_two
    first.create_conversation(Conversation("gone", owner="page", model="m"))
    first.add_messages("gone", [Message("user", "x")])
    assert second.delete_conversation("gone") is True
    assert first.get_conversation("gone") is None
    assert first.messages("gone") == []
    assert first.delete_conversation("gone") is False


def test_rate_counts_are_exact_under_concurrency_across_replicas(open_two):
    hits = []

    def hammer(store):
        for _ in range(25):
            hits.append(store.hit("ip:1.2.3.4", 60).count)

    threads = [threading.Thread(target=hammer, args=(store,)) for store in open_two for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 100 hits from two replicas: every count from 1 to 100 handed out exactly once.
    assert sorted(hits) == list(range(1, 101))
    assert 0 < open_two[0].hit("ip:1.2.3.4", 60).reset_in <= 60
    assert open_two[0].hit("ip:5.6.7.8", 60).count == 1  # callers are counted apart


def test_ping_succeeds_on_a_live_database(open_two):
    open_two[0].ping()


def test_the_last_messages_can_be_read_alone_in_order(open_two):
    first, _ = open_two
    first.create_conversation(Conversation("long", owner="page", model="m"))
    first.add_messages("long", [Message("user", str(i)) for i in range(7)])
    assert [m.content for m in first.messages("long", last=3)] == ["4", "5", "6"]
    assert first.messages("long", last=0) == []
    assert len(first.messages("long", last=50)) == 7
