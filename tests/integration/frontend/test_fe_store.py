"""The storage layer on real SQLite, PostgreSQL and Redis: the same behaviour from every backend."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
import redis

from kubechat_frontend.store import Conversation, DuplicateError, Message, Npc, User, open_store


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


def test_a_regenerated_answer_replaces_only_the_last_turn(open_two):
    first, second = open_two
    first.create_conversation(Conversation("re", owner="page", model="m"))
    first.add_messages("re", [Message("user", "q1"), Message("assistant", "a1")])
    first.add_messages("re", [Message("user", "q2"), Message("assistant", "a2")])
    second.add_messages("re", [Message("user", "q2"), Message("assistant", "a2 again")], replace_last=2)
    assert [(m.role, m.content) for m in first.messages("re")] == [
        ("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2 again"),
    ]  # fmt: skip


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


def test_frontends_starting_together_on_a_fresh_database_migrate_it_once_without_a_race(store_config):
    # Eight workers booting at once against an empty database: before migrations, two raced on CREATE TABLE
    # (UniqueViolation on PostgreSQL) and the loser's gunicorn stopped.
    barrier = threading.Barrier(8)
    opened, failures = [], []

    def boot():
        barrier.wait()
        try:
            opened.append(open_store(store_config["STORE"], store_config["STORE_PASSWORD"]))
        except Exception as error:  # noqa: BLE001 - the failure is what the test reports
            failures.append(repr(error))

    threads = [threading.Thread(target=boot) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert failures == []
        opened[0].create_conversation(Conversation("one", owner="page", model="m"))
        assert opened[-1].get_conversation("one") is not None
    finally:
        for store in opened:
            store.close()


def test_idle_conversations_expire_after_the_retention_period(store_config):
    store = open_store(store_config["STORE"], store_config["STORE_PASSWORD"], retention_days=1)
    try:
        for old in ("old", "older"):
            store.create_conversation(
                Conversation(old, owner="page", model="m", created=time.time() - 3 * 86400)
            )
        store.create_conversation(Conversation("new", owner="page", model="m"))
        store.add_messages("new", [Message("user", "still here")])
        if store_config["STORE"].startswith("redis"):
            # Redis forgets by itself: every key of a conversation carries the retention as its TTL.
            client = redis.Redis.from_url(store_config["STORE"], password=store_config["STORE_PASSWORD"])
            ttls = [client.ttl(key) for key in client.keys("kubechat:*:new")]
            client.close()
            assert len(ttls) == 2 and all(86000 < ttl <= 86400 for ttl in ttls)
        else:
            assert store.expire_idle(time.time() - 86400) == 2
            assert store.get_conversation("old") is None and store.get_conversation("older") is None
        assert [m.content for m in store.messages("new")] == ["still here"]
    finally:
        store.close()


def test_a_database_made_before_migrations_is_adopted_with_its_history(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    with sqlite3.connect(f"{tmp_path}/old.db") as conn:  # the schema frontends made at boot until now
        conn.executescript(LEGACY_SCHEMA)
        conn.execute("INSERT INTO conversations VALUES ('kept', 'page', 'm', '', 1.0)")
        conn.execute("INSERT INTO messages (conversation_id, role, content, pod, node, model, created)"
                     " VALUES ('kept', 'user', 'hello', '', '', '', 1.0)")  # fmt: skip
    store = open_store(url)
    try:
        assert [m.content for m in store.messages("kept")] == ["hello"]
        store.add_messages("kept", [Message("assistant", "hi")])
        assert len(store.messages("kept")) == 2
    finally:
        store.close()


LEGACY_SCHEMA = """
CREATE TABLE conversations (id TEXT PRIMARY KEY, owner TEXT NOT NULL, model TEXT NOT NULL,
    persona TEXT NOT NULL, created DOUBLE PRECISION NOT NULL);
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE, role TEXT NOT NULL,
    content TEXT NOT NULL, pod TEXT NOT NULL, node TEXT NOT NULL, model TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL);
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
CREATE TABLE rate_counters (name TEXT PRIMARY KEY, count INTEGER NOT NULL, expires DOUBLE PRECISION NOT NULL);
"""


def test_gateway_users_and_npcs_are_shared_and_a_taken_name_or_key_is_refused(open_two):
    first, second = open_two
    first.create_user(User("alice", "scrypt$hash", "digest-a"))
    assert second.user_by_key("digest-a") == User("alice", "scrypt$hash", "digest-a")
    assert second.user_by_key("digest-unknown") is None
    with pytest.raises(DuplicateError):
        second.create_user(User("alice", "x", "digest-b"))  # the name is taken
    with pytest.raises(DuplicateError):
        second.create_user(User("bob", "x", "digest-a"))  # the key is taken
    second.create_user(User("bob", "x", "digest-b"))
    first.save_npc(Npc("npc-1", "a knight", "London", True))
    assert second.get_npc("npc-1") == Npc("npc-1", "a knight", "London", True)
    assert second.get_npc("npc-2") is None
