"""Reading the load from /metrics text as the model server and the frontends write it."""

from __future__ import annotations

from kubechat_operator.autoscaler_scrape import PodAddresses, held_requests, model_load
from kubechat_server.metrics import ServerMetrics

FRONTEND_TEXT = """# HELP kubechat_frontend_waiting_requests Requests held for a model with no ready replica.
# TYPE kubechat_frontend_waiting_requests gauge
kubechat_frontend_waiting_requests{model="tiny"} 3.0
kubechat_frontend_waiting_requests{model="other"} 5.0
"""


def test_model_load_is_running_plus_waiting_from_the_model_servers_own_metrics() -> None:
    server = ServerMetrics("tiny")
    server.set_running(4)
    server.set_waiting(3)
    assert model_load(server.render().decode()) == 7


def test_text_without_the_load_gauges_reads_as_unknown() -> None:
    assert model_load("# nothing here\nsome_other_metric 1\n") is None


def test_held_requests_count_only_the_named_model_and_none_exported_means_none_held() -> None:
    assert held_requests(FRONTEND_TEXT, "tiny") == 3
    assert held_requests(FRONTEND_TEXT, "absent") == 0


def test_pods_are_scraped_at_their_ip_unless_the_test_map_names_another_address(tmp_path) -> None:
    pod = {"metadata": {"name": "tiny-1", "namespace": "chat"}, "status": {"podIP": "198.18.1.7"}}
    assert PodAddresses().address(pod, PodAddresses().resolver()) == "198.18.1.7:8080"
    mapping = tmp_path / "addresses.json"
    mapping.write_text('{"chat/tiny-1": "127.0.0.1:5555"}')
    addresses = PodAddresses(str(mapping))
    assert addresses.address(pod, addresses.resolver()) == "127.0.0.1:5555"
    other = {"metadata": {"name": "tiny-2", "namespace": "chat"}, "status": {"podIP": "198.18.1.8"}}
    assert addresses.address(other, addresses.resolver()) is None  # unlisted: not scraped at all
