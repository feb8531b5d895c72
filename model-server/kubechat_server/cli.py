"""``kubechat-server --model PATH_OR_ID [--port ...]``: run the model server outside (or inside) Kubernetes.

Flags mirror the environment variables of docs/contracts.md and win over them. On SIGTERM (or an authorised
``POST /shutdown``) readiness turns 503 at once, new work is refused, queued and running generations
finish, open responses complete, then the process exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time

import uvicorn

from kubechat_server.config import (
    ARCHITECTURES,
    DTYPES,
    ENGINES,
    PROMPT_FORMATS,
    ConfigError,
    config_from_env,
)
from kubechat_server.service import ModelService

log = logging.getLogger("kubechat_server.cli")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kubechat-server", description="Serve a GODEL or Llama-2 style model over HTTP."
    )
    add = parser.add_argument
    add("--model", dest="model_id", help="Hub id, local directory or .gguf file (KUBECHAT_MODEL_ID)")
    add(
        "--model-file",
        help="a GGUF file in the repo or directory of --model, e.g. x.Q4_K_M.gguf (KUBECHAT_MODEL_FILE)",
    )
    add("--served-model-name", help="the name clients use (KUBECHAT_SERVED_MODEL_NAME)")
    add("--architecture", choices=ARCHITECTURES, help="KUBECHAT_ARCHITECTURE")
    add("--prompt-format", choices=PROMPT_FORMATS, help="KUBECHAT_PROMPT_FORMAT")
    add("--instruction", help="KUBECHAT_INSTRUCTION")
    add("--knowledge", help="KUBECHAT_KNOWLEDGE")
    add("--max-new-tokens", type=int, help="KUBECHAT_MAX_NEW_TOKENS")
    add("--temperature", type=float, help="KUBECHAT_TEMPERATURE")
    add("--top-p", type=float, help="KUBECHAT_TOP_P")
    add("--top-k", type=int, help="KUBECHAT_TOP_K (0 = off)")
    add("--min-new-tokens", type=int, help="KUBECHAT_MIN_NEW_TOKENS")
    add("--stop", type=json.loads, help="JSON list of stop strings (KUBECHAT_STOP), e.g. '[\"\\n\"]'")
    add("--max-batch-size", type=int, help="KUBECHAT_MAX_BATCH_SIZE (16)")
    add("--max-queue-delay-ms", type=float, help="KUBECHAT_MAX_QUEUE_DELAY_MS (10)")
    add("--max-queue", type=int, help="KUBECHAT_MAX_QUEUE (256)")
    add("--max-input-tokens", type=int, help="KUBECHAT_MAX_INPUT_TOKENS (1024)")
    add("--request-timeout-s", type=float, help="KUBECHAT_REQUEST_TIMEOUT_S (120)")
    add("--host", help="listen address (0.0.0.0)")
    add("--port", type=int, help="KUBECHAT_PORT (8080)")
    add("--device", help="auto, cpu, cuda, cuda:1 ... (KUBECHAT_DEVICE)")
    add("--torch-threads", type=int, help="CPU threads for torch or llama.cpp (KUBECHAT_TORCH_THREADS)")
    add("--engine", choices=ENGINES, help="KUBECHAT_ENGINE (auto: llama.cpp for a GGUF file on CPU)")
    add("--dtype", choices=DTYPES, help="KUBECHAT_DTYPE (auto: bf16 where the CPU or GPU has it)")
    add("--llama-server", help="path of the llama-server binary (KUBECHAT_LLAMA_SERVER)")
    add("--drain-seconds", type=float, help="after SIGTERM, keep serving this long while readiness is 503")
    add("--log-level", default="info")
    return parser.parse_args(argv)


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM/SIGINT drains instead of stopping at once."""

    def __init__(self, config: uvicorn.Config, service: ModelService, drain_seconds: float):
        super().__init__(config)
        self.service, self.drain_seconds = service, drain_seconds
        self._draining = threading.Event()

    def handle_exit(self, sig: int, frame) -> None:
        if self._draining.is_set():
            self.force_exit = True
            self.should_exit = True
            return
        self._draining.set()
        log.info("signal %s: draining (readiness 503, finishing work in flight)", signal.Signals(sig).name)
        self.service.begin_drain()
        threading.Thread(target=self._drain, name="drain", daemon=True).start()

    def _drain(self) -> None:
        # Let the endpoints controller see the 503 before the listener closes, then let the engine finish.
        time.sleep(self.drain_seconds)
        if self.service.engine is not None:
            self.service.engine.wait_idle(self.service.config.request_timeout_s)
        self.should_exit = True


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kubechat-server`` and ``python -m kubechat_server``."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from kubechat_server.app import create_app

    overrides = {k: v for k, v in vars(args).items() if k != "log_level"}
    if overrides.get("stop") is not None:
        overrides["stop"] = tuple(overrides["stop"])
    try:
        app = create_app(config_from_env(), **overrides)
    except ConfigError as exc:
        print(f"kubechat-server: {exc}", file=sys.stderr)
        return 2
    service: ModelService = app.state.service
    config = service.config
    server = DrainingServer(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=args.log_level,
            timeout_graceful_shutdown=int(config.request_timeout_s),
        ),
        service,
        config.drain_seconds,
    )
    server.run()
    return 0
