"""A loopback stand-in for a Kubernetes Service as kube-proxy makes it: each NEW connection goes to the
backend that is current when it is accepted, while connections already made stay with their backend (as
conntrack keeps them). `switch()` is a rollout's moment when the new pod is ready and the old one leaves the
endpoints."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class TcpService:
    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def switch(self, backend_port: int) -> None:
        self.backend_port = backend_port

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                backend = socket.create_connection(("127.0.0.1", self.backend_port), timeout=5)
            except OSError:
                client.close()  # no endpoint: the caller sees its connection closed, as with a Service
                continue
            self._sockets += [client, backend]
            for source, target in ((client, backend), (backend, client)):
                thread = threading.Thread(target=_pipe, args=(source, target), daemon=True)
                thread.start()
                self._threads.append(thread)

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            target.sendall(chunk)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def tcp_service(backend_port: int) -> Iterator[TcpService]:
    service = TcpService(backend_port)
    try:
        yield service
    finally:
        service.close()
