"""Command lines: `kubechat chat URL|NAME` (an interactive terminal chat) and `kubechat-frontend` (the
server)."""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.spinner import Spinner
from rich.text import Text

from kubechat_frontend.chat_client import ChatClient, ChatError
from kubechat_frontend.cluster_target import Target, TargetError, looks_like_url, resolve

HELP = """Type a message and press Enter (arrows edit the line and walk the history). Commands:
  /new   end this conversation and start another
  /end   end (delete) this conversation and quit
  /quit  quit, keeping the conversation (Ctrl-D too)
Ctrl-C while an answer streams stops it."""


def history_path() -> Path:
    """Lines typed in earlier runs, for the Up arrow and Ctrl-R (XDG state directory, like a shell's)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "kubechat" / "history"


class LineReader:
    """The prompt: prompt_toolkit line editing and history on a terminal, plain reads on a pipe."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._session = None
        if sys.stdin.isatty() and sys.stdout.isatty():
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import FileHistory

            path = history_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            self._session = PromptSession(history=FileHistory(str(path)))

    def read(self) -> str:
        """The next line; EOFError at Ctrl-D or end of input, KeyboardInterrupt at Ctrl-C."""
        if self._session is not None:
            from prompt_toolkit.formatted_text import HTML

            bold = not os.environ.get("NO_COLOR")
            return self._session.prompt(HTML("<b>you&gt;</b> ") if bold else "you> ")
        self._console.print("you> ", end="", markup=False, highlight=False)
        return input()


# The page's words for a waking model's phases (static/chat.js, wakingPhases), so both say the same.
WAKING_PHASES = {
    "asleep": "The model is asleep; waking it up",
    "scheduling": "Finding a place to run the model",
    "starting": "Starting the model",
    "downloading": "Downloading the model",
    "loading": "Loading the model",
    "warming": "Warming up the model",
    "ready": "The model is ready; connecting",
}


def waking_line(event: dict[str, Any]) -> str:
    """One `waking` event as the status line: the phase, the download's percent, the operator's words."""
    phase = WAKING_PHASES.get(event.get("phase", ""), "Waking the model")
    percent = event.get("percent")
    # Halves up, as the page's Math.round (Python's round() would show 40.5 as 40 there and 41 here).
    shown = f" {math.floor(percent + 0.5)}%" if isinstance(percent, int | float) else ""
    message = event.get("message")
    return f"{phase}{shown}…" + (f" ({message})" if message else "")


def print_answer(client: ChatClient, message: str, console: Console) -> None:
    """Stream one answer: rendered as markdown while it arrives on a terminal, plain text on a pipe; then the
    pod/node badge (or the error, or `[stopped]` after Ctrl-C). While the model wakes, a terminal shows what
    it is doing on one updating status line in the answer's place (a pipe gets each new phase once)."""
    origin, text, badge, phase = "", "", "", ""
    live = (
        Live(console=console, refresh_per_second=8, vertical_overflow="ellipsis")
        if console.is_terminal
        else None
    )
    try:
        if live:
            live.start()
        for event in client.stream(message):
            if event["type"] == "waking":
                if live:
                    live.update(Spinner("dots", Text(waking_line(event), style="dim")))
                elif event.get("phase") != phase:
                    console.file.write(f"[{waking_line(event)}]\n")
                    console.file.flush()
                phase = event.get("phase", "")
            elif event["type"] == "meta":
                origin = f"{event.get('pod') or '?'} · {event.get('node') or '?'}"
            elif event["type"] == "delta":
                text += event["text"]
                if live:
                    live.update(Markdown(text))
                else:
                    console.file.write(event["text"])
                    console.file.flush()
        badge = f"[{origin}]" if origin else ""
    except KeyboardInterrupt:
        badge = "[stopped]"
    except ChatError as error:
        badge = f"error: {error}"
    finally:
        if live:
            live.stop()  # draws the whole answer once more, past the screen's height if need be
        elif text:
            console.file.write("\n")
    style = "red" if badge.startswith("error:") else "dim"
    if badge:
        console.print(Text(badge, style=style))


def chat(args: argparse.Namespace) -> int:
    api_key = args.api_key or os.environ.get("KUBECHAT_API_KEY", "")
    try:
        target = (
            Target(url=args.target, label=args.target)
            if looks_like_url(args.target)
            else resolve(args.target, args.namespace, args.kubeconfig, args.context)
        )
    except TargetError as error:
        print(f"kubechat: {error}", file=sys.stderr)
        return 1
    client = ChatClient(target, api_key, args.model, args.persona)
    client.session_id = args.session or ""
    console = Console(highlight=False)
    reader = LineReader(console)
    if sys.stdin.isatty():
        console.print(f"Chatting with {target.label}. /help for commands.", markup=False)
    try:
        while True:
            try:
                line = reader.read()
            except EOFError:
                console.print()
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                break
            if text == "/help":
                console.print(HELP, markup=False)
            elif text in ("/new", "/end"):
                try:
                    client.end()
                except ChatError as error:
                    console.print(Text(f"error: {error}", style="red"))
                if text == "/end":
                    console.print("Conversation ended.")
                    return 0
                console.print("New conversation.")
            else:
                console.print(Text("bot> ", style="bold"))
                print_answer(client, line, console)
    except KeyboardInterrupt:
        console.print()
    finally:
        client.close()
    if client.session_id:
        console.print(
            f"Session {client.session_id} kept; resume with --session {client.session_id}", markup=False
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """`kubechat chat URL|NAME`: chat with a ChatFrontend from the terminal, answers streamed as written."""
    parser = argparse.ArgumentParser(prog="kubechat", description="kubechat command line")
    commands = parser.add_subparsers(dest="command", required=True)
    chat_cmd = commands.add_parser("chat", help="chat with a ChatFrontend in the terminal")
    chat_cmd.add_argument(
        "target",
        metavar="URL|NAME",
        help="the frontend's URL (http://localhost:8080), or a ChatFrontend's name, reached through the "
        "kubeconfig and the apiserver's service proxy",
    )
    chat_cmd.add_argument("--model", default="", help="model to talk to (default: the frontend's default)")
    chat_cmd.add_argument("--persona", default="", help="persona to start the conversation with")
    chat_cmd.add_argument("--api-key", default="", help="API key (default: $KUBECHAT_API_KEY)")
    chat_cmd.add_argument("--session", default="", help="resume this session id")
    chat_cmd.add_argument("-n", "--namespace", default="", help="NAME's namespace (default: the context's)")
    chat_cmd.add_argument(
        "--kubeconfig", default="", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    chat_cmd.add_argument("--context", default="", help="kubeconfig context (default: the current one)")
    args = parser.parse_args(argv)
    return chat(args)


DEFAULT_THREADS = 512  # per gunicorn worker (gthread); KUBECHAT_FRONTEND_THREADS overrides


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
                # Each streaming answer holds a thread while it is relayed: 2 x 512 holds 1,000 open chats per
                # pod (bench/results/frontend.md: 1,000 streams, no errors, +0.7 s p50 to the first piece,
                # ~80 MiB more RSS; gevent workers measured slower with SQLite's blocking calls, and need
                # care with psycopg and the import order).
                "threads": int(os.environ.get("KUBECHAT_FRONTEND_THREADS", str(DEFAULT_THREADS))),
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
