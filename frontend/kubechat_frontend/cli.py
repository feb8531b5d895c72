"""Command lines: `kubechat chat URL` (an interactive terminal chat) and `kubechat-frontend` (the server)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import httpx

DIM, RED, BOLD, RESET = "\033[2m", "\033[31m", "\033[1m", "\033[0m"

HELP = """Type a message and press Enter. Commands:
  /new   end this conversation and start another
  /end   end (delete) this conversation and quit
  /quit  quit, keeping the conversation (Ctrl-D too)
Ctrl-C while an answer streams stops it."""


class ChatError(Exception):
    """The frontend refused or failed; the message is meant for the user."""


class ChatClient:
    """The frontend's JSON API, streamed."""

    def __init__(self, url: str, api_key: str = "", model: str = "", persona: str = "") -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=httpx.Timeout(300, connect=10)
        )
        self.model = model
        self.persona = persona
        self.session_id = ""

    def stream(self, message: str) -> Iterator[dict[str, Any]]:
        """The answer's events (`meta`, `delta`, `done`); `ChatError` for refusals and broken streams."""
        body: dict[str, Any] = {"message": message}
        if self.session_id:
            body["session_id"] = self.session_id
        else:
            body.update({k: v for k, v in (("model", self.model), ("persona", self.persona)) if v})
        try:
            with self._http.stream("POST", "/api/chat/stream", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ChatError(describe_error(response))
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    event = json.loads(line[5:])
                    if event["type"] == "error":
                        raise ChatError(event.get("message", "the answer broke off"))
                    if event["type"] == "meta":
                        self.session_id = event["session_id"]
                    yield event
        except httpx.HTTPError as error:
            raise ChatError(f"cannot reach {self._http.base_url}: {error}") from error

    def end(self) -> None:
        """End (delete) the current conversation on the server."""
        if self.session_id:
            response = self._http.delete(f"/api/sessions/{self.session_id}")
            if response.status_code not in (204, 404):
                raise ChatError(describe_error(response))
            self.session_id = ""

    def close(self) -> None:
        self._http.close()


def describe_error(response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200] or response.reason_phrase
    retry = response.headers.get("Retry-After")
    return f"{message} (HTTP {response.status_code}{f', retry after {retry} s' if retry else ''})"


def print_answer(client: ChatClient, message: str, color: bool) -> None:
    """Stream one answer to stdout as it arrives, then its pod/node badge."""
    dim, red, reset = (DIM, RED, RESET) if color else ("", "", "")
    origin = ""
    try:
        for event in client.stream(message):
            if event["type"] == "meta":
                origin = f"{event.get('pod') or '?'} · {event.get('node') or '?'}"
            elif event["type"] == "delta":
                sys.stdout.write(event["text"])
                sys.stdout.flush()
        sys.stdout.write(f"\n{dim}[{origin}]{reset}\n" if origin else "\n")
    except KeyboardInterrupt:
        sys.stdout.write(f"\n{dim}[stopped]{reset}\n")
    except ChatError as error:
        sys.stdout.write(f"\n{red}error: {error}{reset}\n")
    sys.stdout.flush()


def chat(args: argparse.Namespace) -> int:
    client = ChatClient(
        args.url, args.api_key or os.environ.get("KUBECHAT_API_KEY", ""), args.model, args.persona
    )
    client.session_id = args.session or ""
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    bold, reset = (BOLD, RESET) if color else ("", "")
    if sys.stdin.isatty():
        print(f"Chatting with {args.url}. /help for commands.")
    try:
        while True:
            try:
                line = input(f"{bold}you>{reset} ")
            except EOFError:
                print()
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                break
            if text == "/help":
                print(HELP)
            elif text in ("/new", "/end"):
                try:
                    client.end()
                except ChatError as error:
                    print(f"error: {error}")
                if text == "/end":
                    print("Conversation ended.")
                    return 0
                print("New conversation.")
            else:
                sys.stdout.write(f"{bold}bot>{reset} ")
                print_answer(client, line, color)
    except KeyboardInterrupt:
        print()
    finally:
        client.close()
    if client.session_id:
        print(f"Session {client.session_id} kept; resume with --session {client.session_id}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`kubechat chat URL`: chat with a ChatFrontend from the terminal, answers streamed as written."""
    parser = argparse.ArgumentParser(prog="kubechat", description="kubechat command line")
    commands = parser.add_subparsers(dest="command", required=True)
    chat_cmd = commands.add_parser("chat", help="chat with a ChatFrontend in the terminal")
    chat_cmd.add_argument("url", help="the ChatFrontend's URL, e.g. http://localhost:8080")
    chat_cmd.add_argument("--model", default="", help="model to talk to (default: the frontend's default)")
    chat_cmd.add_argument("--persona", default="", help="persona to start the conversation with")
    chat_cmd.add_argument("--api-key", default="", help="API key (default: $KUBECHAT_API_KEY)")
    chat_cmd.add_argument("--session", default="", help="resume this session id")
    args = parser.parse_args(argv)
    return chat(args)


def shared_key_problem(environ: dict[str, str] | os._Environ[str]) -> str:
    """Why these settings cannot serve sessions, or "": several workers each inventing a random key would
    refuse one another's cookies (a CSRF failure on every other send), so they need one key from a Secret."""
    workers = int(environ.get("KUBECHAT_FRONTEND_WORKERS", "2"))
    if workers > 1 and not environ.get("KUBECHAT_FRONTEND_SECRET_KEY"):
        return (
            f"refusing to start {workers} workers without KUBECHAT_FRONTEND_SECRET_KEY: each would sign "
            "sessions with its own random key and refuse the others' cookies. Set the key (the operator "
            "does, from the Secret <name>-session) or KUBECHAT_FRONTEND_WORKERS=1."
        )
    return ""


def _forget_worker_metrics(_server: Any, worker: Any) -> None:
    """A worker that exits leaves its live gauges (open streams) behind unless marked dead."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def serve() -> None:
    """`kubechat-frontend`: run the frontend under gunicorn with threads, so many answers stream at once."""
    import logging

    problem = shared_key_problem(os.environ)
    if problem:
        from kubechat_frontend.logs import configure_logging

        configure_logging()
        logging.getLogger("kubechat_frontend").error(problem)
        raise SystemExit(2)

    # Workers share their metrics through files here (on the pod's /tmp); set before prometheus_client is
    # imported, which picks its multiprocess mode then.
    metrics_dir = ""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="kubechat-metrics-")

    from gunicorn.app.base import BaseApplication

    from kubechat_frontend.app import create_app

    class Server(BaseApplication):
        def load_config(self) -> None:
            host = os.environ.get("KUBECHAT_FRONTEND_HOST", "0.0.0.0")
            port = os.environ.get("KUBECHAT_FRONTEND_PORT", "8080")
            settings = {
                "bind": f"{host}:{port}",
                "worker_class": "gthread",
                "workers": int(os.environ.get("KUBECHAT_FRONTEND_WORKERS", "2")),
                "threads": int(os.environ.get("KUBECHAT_FRONTEND_THREADS", "64")),
                # Streams last as long as an answer takes; the model server enforces its own timeout.
                "timeout": 0,
                "graceful_timeout": 30,
                "keepalive": 5,
                "accesslog": None,  # the app writes its own JSON request log
                "errorlog": "-",
                # gunicorn's runtime-control socket has one fixed path per user: replicas on one host (and
                # read-only container filesystems) would collide on it, and nothing here uses it.
                "control_socket_disable": True,
                "child_exit": _forget_worker_metrics,
                "on_exit": lambda _server: metrics_dir and shutil.rmtree(metrics_dir, ignore_errors=True),
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return create_app()

    Server().run()


if __name__ == "__main__":
    sys.exit(main())
