"""Password hashes for gateway users: scrypt from the standard library (memory-hard, salted), so no extra
dependency; the parameters are OWASP's minimum for scrypt (N=2^17, r=8, p=1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**17, 8, 1
MAXMEM = 256 * 1024 * 1024


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, maxmem=MAXMEM)
    return f"scrypt${N}${R}${P}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def check_password(password: str, hashed: str) -> bool:
    try:
        _, n, r, p, salt, key = hashed.split("$")
        computed = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), maxmem=MAXMEM
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed, base64.b64decode(key))
