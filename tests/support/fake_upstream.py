"""An adversarial upstream: an HTTP server speaking the model server's `/v1/chat/completions` SSE wire format
whose answer is a string chosen by the test (e.g. `<script>…`).

This is not a stand-in for the model server (every other frontend test uses the real one with a tiny model):
a randomly initialised tiny model cannot be made to say a given hostile string, and the point of these tests
is what the frontend does when an upstream says something malicious.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextlib.contextmanager
def hostile_model(
    answer_pieces: list[str], pod: str = "evil-pod", node: str = "evil-node", pause_s: float = 0
) -> Iterator[str]:
    """Serve `answer_pieces` as a streamed chat completion on loopback; yields the base URL. `pause_s`
    between pieces makes it a slow upstream (many long streams held open at once)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/readyz" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for i, piece in enumerate(answer_pieces):
                chunk = {
                    "object": "chat.completion.chunk",
                    "model": body.get("model"),
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
                if i == 0:
                    chunk["kubechat"] = {"pod": pod, "node": node, "model": body.get("model")}
                if i and pause_s:
                    time.sleep(pause_s)
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")

    class Server(ThreadingHTTPServer):
        request_queue_size = 2048  # a thousand clients connecting at once are queued, not refused
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
