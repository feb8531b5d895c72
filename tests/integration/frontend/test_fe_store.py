"""The storage layer on real SQLite, PostgreSQL and Redis: the same behaviour from every backend."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
import redis
from alembic import command
from sqlalchemy import insert

from kubechat_frontend import create_app
from kubechat_frontend.migrations import _config as migration_config
from kubechat_frontend.store import (
    Conversation,
    DuplicateError,
    Message,
    Npc,
    User,
    open_store,
    sql_engine,
    tables,
)  # fmt: skip
from kubechat_frontend.store import _with_password as with_password
from kubechat_frontend.store.base import title_from
from tests.support.databases import create_database, flush_redis, redis_url


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


def test_a_browsers_conversations_are_listed_most_recent_first_with_their_first_question_as_title(open_two):
    first, second = open_two
    for n, cid in enumerate(("a1", "a2", "a3")):
        first.create_conversation(Conversation(cid, owner="page:alice", model="m", created=1000.0 + n))
    first.create_conversation(Conversation("b1", owner="page:bob", model="m"))
    long_question = "  Where   is the <b>castle</b>?\n" + "and more " * 20
    assert second.add_messages("a1", [Message("user", long_question), Message("assistant", "north")],
                               title=title_from(long_question)) is True  # fmt: skip
    first.add_messages("a1", [Message("user", "later"), Message("assistant", "ok")], title="later")

    listed = second.list_conversations("page:alice")
    assert [c.id for c in listed] == ["a1", "a3", "a2"]  # a1 answered last; the others by their start
    assert listed[0].title == title_from(long_question)  # the first question names it; later ones do not
    assert listed[0].title.startswith("Where is the <b>castle</b>? and more") and len(listed[0].title) <= 60
    assert listed[0].title.endswith("\u2026")
    assert listed[0].last_active > listed[1].last_active
    assert [c.title for c in listed[1:]] == ["", ""]
    assert [c.id for c in first.list_conversations("page:bob")] == ["b1"]
    assert first.list_conversations("page:nobody") == []
    assert [c.id for c in first.list_conversations("page:alice", limit=2)] == ["a1", "a3"]


def test_a_rename_made_through_one_replica_is_listed_by_another(open_two):
    first, second = open_two
    first.create_conversation(Conversation("r1", owner="page:alice", model="m"))
    assert second.rename_conversation("r1", "Trip to <Paris> & back") is True
    assert first.get_conversation("r1").title == "Trip to <Paris> & back"
    assert [c.title for c in first.list_conversations("page:alice")] == ["Trip to <Paris> & back"]
    first.add_messages("r1", [Message("user", "q"), Message("assistant", "a")], title="q")
    assert first.get_conversation("r1").title == "Trip to <Paris> & back"  # a rename outlives new turns
    assert second.rename_conversation("missing", "x") is False


def test_a_deleted_conversation_leaves_the_list_and_a_late_answer_does_not_bring_it_back(open_two):
    first, second = open_two
    first.create_conversation(Conversation("d1", owner="page:alice", model="m"))
    first.create_conversation(Conversation("d2", owner="page:alice", model="m"))
    first.add_messages("d1", [Message("user", "secret"), Message("assistant", "kept?")], title="secret")
    assert second.delete_conversation("d1") is True
    assert [c.id for c in first.list_conversations("page:alice")] == ["d2"]
    # The answer that was streaming while the user deleted the conversation is dropped, not saved.
    assert first.add_messages("d1", [Message("user", "more"), Message("assistant", "late")]) is False
    assert first.get_conversation("d1") is None and first.messages("d1") == []
    assert first.rename_conversation("d1", "back?") is False
    assert first.get_conversation("d1") is None
    assert [c.id for c in second.list_conversations("page:alice")] == ["d2"]


def test_a_conversation_changes_owner_only_from_the_owner_named(open_two):
    first, second = open_two
    first.create_conversation(Conversation("old", owner="page", model="m", created=5.0))
    first.add_messages("old", [Message("user", "from before lists"), Message("assistant", "hi")])
    assert second.change_owner("old", "page:mallory", "page:eve") is False
    assert second.change_owner("old", "page", "page:alice") is True
    assert second.change_owner("old", "page", "page:bob") is False  # adopted once, by the first
    listed = first.list_conversations("page:alice")
    assert [c.id for c in listed] == ["old"]
    assert listed[0].owner == "page:alice" and listed[0].title == "from before lists"
    assert first.list_conversations("page:bob") == []
    assert second.change_owner("missing", "page", "page:alice") is False


def test_redis_lists_expire_with_their_conversations(redis_server):
    flush_redis(redis_server)
    store = open_store(redis_url(redis_server), redis_server.password, retention_days=1)
    client = redis.Redis.from_url(redis_url(redis_server), password=redis_server.password)
    try:
        store.create_conversation(Conversation("t1", owner="page:alice", model="m"))
        store.create_conversation(Conversation("t2", owner="page:alice", model="m"))
        assert 86000 < client.ttl("kubechat:owned:page:alice") <= 86400
        client.delete("kubechat:conversation:t1", "kubechat:messages:t1")  # as its TTL would
        assert [c.id for c in store.list_conversations("page:alice")] == ["t2"]
        assert client.zrange("kubechat:owned:page:alice", 0, -1) == [b"t2"]  # the stale id is dropped
    finally:
        client.close()
        store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """The URL (password included) of an empty SQL database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/history.db"
    server = request.getfixturevalue("postgres_server")
    return with_password(create_database(server), server.password)


def test_upgrading_a_database_with_conversations_lists_them_titled_and_in_order(sql_url):
    engine = sql_engine(sql_url)
    with engine.begin() as conn:  # a database as the previous release left it: at revision 0001
        command.upgrade(migration_config(conn), "0001")
        conn.execute(insert(tables.conversations), [
            {"id": "quiet", "owner": "page", "model": "m", "persona": "", "created": 10.0, "updated": None},
            {"id": "busy", "owner": "page", "model": "m", "persona": "", "created": 5.0, "updated": 50.0},
            {"id": "empty", "owner": "page", "model": "m", "persona": "", "created": 20.0, "updated": None},
        ])  # fmt: skip
        conn.execute(insert(tables.messages), [
            {"conversation_id": c, "role": r, "content": t, "pod": "", "node": "", "model": "m",
             "created": 1.0}
            for c, r, t in [("quiet", "user", "How  tall\nis it?"), ("quiet", "assistant", "Tall."),
                            ("busy", "user", "first"), ("busy", "assistant", "a"), ("busy", "user", "second")]
        ])  # fmt: skip
    engine.dispose()

    store = open_store(sql_url)  # what a new frontend does at start: migrate to head
    try:
        listed = store.list_conversations("page")
        assert [(c.id, c.title) for c in listed] == [
            ("busy", "first"),
            ("empty", ""),
            ("quiet", "How tall is it?"),
        ]
        assert [c.last_active for c in listed] == [50.0, 20.0, 10.0]
        assert [m.content for m in store.messages("quiet")] == [
            "How  tall\nis it?",
            "Tall.",
        ]  # history intact
    finally:
        store.close()


def test_a_browser_whose_cookie_names_a_conversation_from_before_lists_finds_it_in_its_list(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    with sqlite3.connect(f"{tmp_path}/old.db") as conn:  # made before migrations, owned by "page"
        conn.executescript(LEGACY_SCHEMA)
        conn.execute("INSERT INTO conversations VALUES ('kept', 'page', 'm', '', 1.0)")
        conn.execute("INSERT INTO conversations VALUES ('other', 'page', 'm', '', 2.0)")
        conn.execute("INSERT INTO messages (conversation_id, role, content, pod, node, model, created)"
                     " VALUES ('kept', 'user', 'hello from <then>', '', '', '', 1.0)")  # fmt: skip
    app = create_app({"STORE": url, "SECRET_KEY": "s", "COOKIE_SECURE": False,
                      "MODELS": [{"name": "m", "url": "http://127.0.0.1:9"}]})  # fmt: skip
    try:
        old_cookie = app.session_interface.get_signing_serializer(app).dumps({"conversation": "kept"})
        browser = app.test_client()
        browser.set_cookie("kubechat_session", old_cookie)
        page = browser.get("/").text
        assert "hello from &lt;then&gt;" in page  # its history, on the page as before
        listed = browser.get("/chat/conversations").json["conversations"]
        assert [(c["id"], c["title"], c["open"]) for c in listed] == [("kept", "hello from <then>", True)]
        # Another browser (no cookie, or a cookie naming none) does not get it, nor the unclaimed one.
        stranger = app.test_client()
        stranger.get("/")
        assert stranger.get("/chat/conversations").json["conversations"] == []
        assert stranger.get("/c/kept").status_code == 303 and stranger.get("/c/other").status_code == 303
    finally:
        app.extensions["kubechat"].close()


def test_token_counts_add_up_across_replicas_and_a_users_budget_is_kept(open_two):
    first, second = open_two
    assert first.hit("tokens:key:abc", 86400, 0).count == 0  # reading does not count
    first.hit("tokens:key:abc", 86400, 120)
    assert second.hit("tokens:key:abc", 86400, 30).count == 150
    assert first.hit("tokens:key:abc", 86400, 0).count == 150
    first.create_user(User("cap", "h", "digest-cap", token_budget=5000))
    first.create_user(User("free", "h", "digest-free"))
    assert second.user_by_key("digest-cap").token_budget == 5000
    assert second.user_by_key("digest-free").token_budget is None
