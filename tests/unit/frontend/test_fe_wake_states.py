"""What a waking model is doing, from the ChatModel's status and the model server's readiness."""

from __future__ import annotations

from kubechat_frontend.chatmodel_status import DELETED
from kubechat_frontend.cli import waking_line
from kubechat_frontend.wake import Waking, describe


def chatmodel(replicas: int = 1, **status: object) -> dict:
    return {"spec": {"replicas": replicas}, "status": status}


def test_a_model_scaled_to_zero_is_asleep() -> None:
    assert describe(chatmodel(replicas=0), None).phase == "asleep"


def test_the_least_advanced_pods_progress_is_shown_with_its_download_percent() -> None:
    downloading = {"pod": "a", "stage": "downloading", "percent": 41.46, "message": "model.safetensors"}
    progress = {"pods": [downloading, {"pod": "b", "stage": "warming", "message": ""}]}
    waking = describe(chatmodel(loadProgress=progress), None)
    assert waking == Waking("downloading", "model.safetensors", 41.46)
    assert waking.to_dict() == {"phase": "downloading", "message": "model.safetensors", "percent": 41.5}


def test_a_percent_is_shown_only_while_downloading() -> None:
    progress = {"pods": [{"pod": "a", "stage": "loading", "percent": 100.0, "message": ""}]}
    assert describe(chatmodel(loadProgress=progress), None).percent is None


def test_an_unschedulable_pod_is_reported_as_scheduling_with_the_schedulers_words() -> None:
    waking = describe(chatmodel(reason="Unschedulable", message="0/1 nodes: Insufficient cpu."), None)
    assert (waking.phase, waking.message) == ("scheduling", "0/1 nodes: Insufficient cpu.")


def test_a_failed_chatmodel_is_final_so_nobody_waits_for_it() -> None:
    waking = describe(chatmodel(phase="Failed", reason="ImagePullBackOff", message="no such image"), None)
    assert waking.final and waking.message == "no such image"


def test_without_an_apiserver_the_model_servers_own_load_report_is_used() -> None:
    readiness = {"status": "loading", "load": {"stage": "warming", "message": "first generation"}}
    assert describe(None, readiness) == Waking("warming", "first generation")
    assert describe(None, None).phase == "starting"  # nothing answered at all


def test_a_deleted_chatmodel_is_final_so_nobody_waits_for_it() -> None:
    waking = describe(DELETED, None)
    assert (waking.phase, waking.final) == ("deleted", True)


def test_the_terminal_client_says_a_waking_phase_as_the_page_does_with_percent_and_message() -> None:
    event = {"type": "waking", "phase": "downloading", "percent": 40.5, "message": "model.safetensors"}
    assert waking_line(event) == "Downloading the model 41%… (model.safetensors)"
    assert waking_line({"type": "waking", "phase": "something new"}) == "Waking the model…"
