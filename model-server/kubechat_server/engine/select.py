"""Which engine serves the model, and starting it.

Every engine offers the same narrow seam to the routes: ``submit_many(items, timeout_s, stream,
hide_scratchpad)`` (all items queued or none) returning ``GenerationRequest``s whose events arrive on the
caller's loop, ``fault`` (readiness and liveness turn 503 once set), ``queue_depth``, ``stop_accepting()``,
``wait_idle(timeout)`` and ``close()``, and the vLLM-named metrics; and model facts with ``tokenizer``,
``seq2seq``, ``model_type``, ``has_chat_template``, ``eos_token_ids``, ``max_positions``,
``generation_config`` and ``device_facts()``. Prompts, safety, sampling defaults and checks stay above the
seam, answers' text below it in ``engine/answer.py``, so a further engine (vLLM on GPUs) is one more branch
here."""

from __future__ import annotations

import logging

from kubechat_server.config import ServerConfig
from kubechat_server.engine.loader import ModelLoadError, choose_device, resolve_model
from kubechat_server.engine.threads import cpu_threads
from kubechat_server.metrics import ServerMetrics
from kubechat_server.progress import ProgressReporter

log = logging.getLogger("kubechat_server.engine")


def choose_engine(requested: str, is_gguf: bool, device_type: str, has_llama_server: bool = True) -> str:
    """``auto``: llama.cpp for a GGUF file on CPU where a ``llama-server`` binary this CPU can run is
    installed (the server image ships one), transformers for everything else (it dequantises a GGUF file, so
    a ChatModel naming one still loads where llama-server is missing or the CPU lacks its instructions)."""
    if requested == "auto":
        wanted = is_gguf and device_type == "cpu" and has_llama_server
        return "llama.cpp" if wanted else "transformers"
    if requested == "llama.cpp" and not is_gguf:
        raise ModelLoadError(
            "the llama.cpp engine serves GGUF files: name one with model.file (KUBECHAT_MODEL_FILE), point "
            "the model at a .gguf file (or a directory holding only one), or set engine: transformers"
        )
    return requested


def llama_server_installed(configured: str | None) -> bool:
    from kubechat_server.engine.llamacpp import LlamaServerError, find_llama_server

    try:
        find_llama_server(configured)
    except LlamaServerError:
        return False
    return True


def start_engine(config: ServerConfig, metrics: ServerMetrics, reporter: ProgressReporter):
    """Load the configured model on the chosen engine; returns ``(model facts, engine)``."""
    if not config.model_id:
        raise ModelLoadError("no model configured: set KUBECHAT_MODEL_ID or --model")
    threads = cpu_threads(config.torch_threads)
    local = resolve_model(config, reporter)
    gguf = local.gguf_path
    name = choose_engine(
        config.engine,
        gguf is not None,
        choose_device(config.device).type,
        has_llama_server=llama_server_installed(config.llama_server),
    )
    log.info("engine %s, %d CPU threads", name, threads)
    if name == "llama.cpp":
        from kubechat_server.engine.llamacpp import start_llamacpp

        reporter.update("loading", f"starting llama.cpp on {gguf.name}")
        return start_llamacpp(gguf, config, metrics, threads)

    import torch

    from kubechat_server.engine.engine import Engine
    from kubechat_server.engine.loader import load_model

    torch.set_num_threads(threads)
    loaded = load_model(config, reporter, local)
    engine = Engine(
        loaded,
        metrics,
        max_batch_size=config.max_batch_size,
        max_queue_delay_ms=config.max_queue_delay_ms,
        max_queue=config.max_queue,
    )
    return loaded, engine
