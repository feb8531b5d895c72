"""Metrics under vLLM's names (what dashboards, KEDA scalers and the Gateway API inference extension read)
beside kubechat's own, and the chart's Grafana dashboard asks only for metrics the server exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import requests

DASHBOARD = (
    Path(__file__).resolve().parents[3] / "charts/kubechat/files/dashboards/kubechat-model-servers.json"
)


def scrape(server) -> dict[str, float]:
    """``name{labels}`` -> value for every sample of ``/metrics``."""
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+) (\S+)$", text, re.M)}


def test_vllm_metrics_count_a_request_with_the_model_name_label(llama_server):
    model = requests.get(f"{llama_server.url}/v1/models", timeout=10).json()["data"][0]["id"]
    label = f'model_name="{model}"'
    before = scrape(llama_server)
    answer = requests.post(
        f"{llama_server.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 5, "temperature": 0},
        timeout=60,
    ).json()
    after = scrape(llama_server)

    def moved(name: str) -> float:
        return after[name] - before.get(name, 0.0)

    usage = answer["usage"]
    reason = answer["choices"][0]["finish_reason"]
    assert moved(f"vllm:prompt_tokens_total{{{label}}}") == usage["prompt_tokens"]
    assert moved(f"vllm:generation_tokens_total{{{label}}}") == usage["completion_tokens"]
    assert moved(f'vllm:request_success_total{{finished_reason="{reason}",{label}}}') == 1
    assert moved(f"vllm:e2e_request_latency_seconds_count{{{label}}}") == 1
    assert moved(f"vllm:time_to_first_token_seconds_count{{{label}}}") == 1
    if usage["completion_tokens"] > 1:
        assert moved(f"vllm:time_per_output_token_seconds_count{{{label}}}") == 1
    assert after[f"vllm:num_requests_running{{{label}}}"] == 0
    assert after[f"vllm:num_requests_waiting{{{label}}}"] == 0
    # kubechat's own names stay.
    assert moved("kubechat_generated_tokens_total") >= usage["completion_tokens"]


def test_the_grafana_dashboard_queries_only_metrics_the_server_exports(llama_server):
    requests.post(
        f"{llama_server.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2},
        timeout=60,
    )
    exported = {re.sub(r"\{.*", "", name) for name in scrape(llama_server)}
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    used = set()
    for query in queries:
        used |= set(re.findall(r"\b((?:vllm:|kubechat_)[a-z0-9_:]+)", query))
    assert used, "the dashboard queries no metric"
    missing = sorted(used - exported)
    assert not missing, f"the dashboard asks for metrics the server does not export: {missing}"
