"""API keys: read from the mounted Secret file, kept hashed, compared in constant time; the admin key."""

import os

import pytest

from kubechat_frontend.auth import KeyRing
from kubechat_frontend.errors import ApiError


@pytest.fixture
def keys_file(tmp_path):
    path = tmp_path / "keys"
    path.write_text("# team keys\nalpha-key\n\n  beta-key  \n")
    return path


def test_configured_keys_identify_callers_by_digest_never_by_the_key(keys_file):
    ring = KeyRing(str(keys_file))
    alpha = ring.identify("alpha-key", "10.0.0.1")
    assert alpha.id.startswith("key:") and "alpha" not in alpha.id and not alpha.admin
    assert ring.identify("beta-key", "10.0.0.1").id != alpha.id
    assert not any(b"alpha-key" in d for d in ring._digests)  # only digests are kept in memory


def test_missing_key_is_401_and_wrong_key_is_403(keys_file):
    ring = KeyRing(str(keys_file))
    with pytest.raises(ApiError) as missing:
        ring.identify(None, "10.0.0.1")
    assert missing.value.status == 401
    with pytest.raises(ApiError) as wrong:
        ring.identify("# team keys", "10.0.0.1")  # a comment line is not a key
    assert wrong.value.status == 403


def test_admin_key_is_recognised_as_admin(keys_file):
    ring = KeyRing(str(keys_file), admin_key="root-secret")
    assert ring.identify("root-secret", "10.0.0.1").admin
    with pytest.raises(ApiError):
        KeyRing(admin_key="root-secret").identify("alpha-key", "10.0.0.1")


def test_without_keys_the_api_is_open_and_callers_are_told_apart_by_ip():
    ring = KeyRing()
    assert not ring.required
    assert ring.identify(None, "10.0.0.9").id == "ip:10.0.0.9"


def test_a_rotated_secret_file_takes_effect_without_restart(keys_file):
    ring = KeyRing(str(keys_file))
    keys_file.write_text("gamma-key\n")
    stat = os.stat(keys_file)
    os.utime(keys_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert ring.identify("gamma-key", "10.0.0.1").id.startswith("key:")
    with pytest.raises(ApiError):
        ring.identify("alpha-key", "10.0.0.1")


def test_a_key_line_may_give_the_key_its_own_token_budget(tmp_path):
    path = tmp_path / "keys"
    path.write_text("# key [tokens per period]\nsmall-key 500\nfree-key 0\nplain-key\n")
    ring = KeyRing(str(path))
    assert ring.identify("small-key", "").token_budget == 500
    assert ring.identify("free-key", "").token_budget == 0  # no budget at all
    assert ring.identify("plain-key", "").token_budget is None  # the frontend's default


def test_a_malformed_budget_refuses_to_start_without_showing_the_key_but_a_later_bad_edit_keeps_the_old(
    tmp_path,
):
    path = tmp_path / "keys"
    path.write_text("secret-key lots\n")
    with pytest.raises(ValueError) as error:
        KeyRing(str(path))
    assert "secret-key" not in str(error.value) and "key:" in str(error.value)
    path.write_text("good-key 10\n")
    ring = KeyRing(str(path))
    path.write_text("good-key ten\n")
    os.utime(path, (1, 1))  # a new mtime, as a Secret update gives
    assert ring.identify("good-key", "").token_budget == 10
