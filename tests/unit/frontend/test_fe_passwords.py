"""Gateway user passwords: salted scrypt hashes that check the right password only."""

from __future__ import annotations

from kubechat_frontend.passwords import check_password, hash_password


def test_a_password_checks_against_its_hash_and_nothing_else():
    hashed = hash_password("correct horse")
    assert hashed.startswith("scrypt$") and "correct horse" not in hashed
    assert check_password("correct horse", hashed)
    assert not check_password("correct horsf", hashed)
    assert hash_password("correct horse") != hashed  # salted
    assert not check_password("anything", "not-a-hash")
