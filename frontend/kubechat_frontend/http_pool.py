"""Keep-alive HTTP/1.1 connections to the model servers, shared by the frontend's threads.

The standard library's `http.client` under a small pool: the upstream call is most of the frontend's own
work per turn, and this costs about half the CPU of a general-purpose client for the same streamed answer.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

# What a broken connection or an unreachable server raises; callers turn it into "model unavailable".
TransportError = (OSError, http.client.HTTPException)


class ConnectFailed(ConnectionError):
    """No connection could be made (refused, unreachable, no answer to connect): nothing serves there now,
    as when a Service has no ready endpoint. Unlike a failure later on, the request was never sent."""


class _Connection(http.client.HTTPConnection):
    """A connection whose connect timeout is short while reads may wait as long as an answer takes."""

    def __init__(self, host: str, port: int | None, connect_timeout: float, read_timeout: float) -> None:
        super().__init__(host, port, timeout=read_timeout)
        self._connect_timeout = connect_timeout

    def connect(self) -> None:
        try:
            self.sock = socket.create_connection((self.host, self.port), self._connect_timeout)
        except OSError as error:
            raise ConnectFailed(f"{type(error).__name__}: {error}") from error
        self.sock.settimeout(self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class WholeBody:
    """`text` and `json()` of a response's whole body, from the `read()` its class defines (the pool's own
    responses, and the budgets' metered ones that wrap them)."""

    def read(self) -> bytes:
        raise NotImplementedError

    @property
    def text(self) -> str:
        return self.read().decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.read())


class UpstreamResponse(WholeBody):
    """A response being read; `close()` gives its connection back to the pool if it can be reused."""

    def __init__(
        self,
        pool: ConnectionPool,
        connection: _Connection,
        response: http.client.HTTPResponse,
        reused: bool,
    ) -> None:
        self._pool: ConnectionPool | None = pool
        self._connection = connection
        self._response = response
        # Answered on a kept-alive connection: by the pod that connection reached, maybe no longer the one
        # the Service would pick now (a pod draining in a rollout answers 503 on its old connections).
        self.reused = reused
        self.status_code = response.status
        self.headers = response.headers  # case-insensitive .get()
        self._body: bytes | None = None

    def iter_lines(self) -> Iterator[str]:
        for raw in self._response:
            yield raw.decode("utf-8", "replace").rstrip("\r\n")

    def iter_raw(self) -> Iterator[bytes]:
        while chunk := self._response.read1(65536):
            yield chunk

    def read(self) -> bytes:
        if self._body is None:
            self._body = self._response.read()
        return self._body

    def close(self) -> None:
        """Idempotent: the connection goes back to the pool (or is closed) exactly once."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        # Fully read and not marked "Connection: close": the connection can carry the next request.
        reusable = self._response.isclosed() and not self._response.will_close
        self._response.close()
        pool.release(self._connection, reusable)


class ConnectionPool:
    """Idle keep-alive connections to one server (`http://host:port`), reused most recent first."""

    def __init__(
        self, base_url: str, connect_timeout: float, read_timeout: float, max_idle: int = 64
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http":
            raise ValueError(f"model URLs are in-cluster http:// Service URLs, got {base_url!r}")
        self._host, self._port = parts.hostname or "", parts.port
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout
        self._idle: list[_Connection] = []
        self._max_idle = max_idle
        self._lock = threading.Lock()

    def _new_connection(self) -> _Connection:
        return _Connection(self._host, self._port, self._connect_timeout, self._read_timeout)

    def _connection(self) -> tuple[_Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._new_connection(), False

    def release(self, connection: _Connection, reusable: bool) -> None:
        with self._lock:
            if reusable and len(self._idle) < self._max_idle:
                self._idle.append(connection)
                return
        connection.close()

    def discard_idle(self) -> None:
        """Close the idle connections: they lead to a pod that is going away (it answered one with 503)."""
        self.close()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        fresh: bool = False,
    ) -> UpstreamResponse:
        """Send a request (on a new connection if `fresh`); raises one of `TransportError` when the server
        cannot be reached."""
        headers = {**({"Content-Type": "application/json"} if body is not None else {}), **(headers or {})}
        while True:
            if fresh:
                connection, reused = self._new_connection(), False
            else:
                connection, reused = self._connection()
            try:
                connection.request(method, path, body=body, headers=headers)
                return UpstreamResponse(self, connection, connection.getresponse(), reused)
            except TransportError:
                connection.close()
                # A kept-alive connection the server has since closed fails before the request is read;
                # send it again on a fresh connection. A fresh connection's failure is the answer.
                if not reused:
                    raise

    def get(self, path: str, timeout: float) -> tuple[int, bytes]:
        """The status and body of a GET on a one-off connection (for readiness checks)."""
        connection = _Connection(self._host, self._port, timeout, timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
