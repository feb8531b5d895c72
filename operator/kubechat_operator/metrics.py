"""Prometheus metrics of the operator (served on --metrics-port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("kubechat_operator_reconciles_total", "Reconciles run", ["kind"])
RECONCILE_ERRORS = Counter("kubechat_operator_reconcile_errors_total", "Reconciles that raised", ["kind"])
RECONCILE_SECONDS = Histogram(
    "kubechat_operator_reconcile_duration_seconds",
    "Duration of one reconcile",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TIME_TO_READY = Histogram(
    "kubechat_operator_time_to_ready_seconds",
    "Time from a new generation being seen (or the resource created) to phase Ready",
    ["kind"],
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
QUEUE_BUSY = Gauge("kubechat_operator_queue_busy", "Resources with a reconcile pending or running")
CHILD_EVENTS = Counter(
    "kubechat_operator_child_events_total",
    "Watch events of children received (the apiserver filters the watches by the managed-by label)",
    ["kind"],
)
PROGRESS_REFRESHES = Counter(
    "kubechat_operator_progress_refreshes_total",
    "Load-progress reports turned into status without a full reconcile",
)
APPLIES = Counter("kubechat_operator_applies_total", "Server-side applies of children", ["kind"])

# The request autoscaler (autoscaler.py): one series per ChatModel it scales, removed with the model.
AUTOSCALER_DESIRED = Gauge(
    "kubechat_operator_autoscaler_desired_replicas",
    "Replicas the request autoscaler decided on",
    ["namespace", "chatmodel"],
)
AUTOSCALER_LOAD = Gauge(
    "kubechat_operator_autoscaler_observed_load",
    "In-flight + queued requests on the ready model pods plus requests held by ChatFrontends",
    ["namespace", "chatmodel"],
)
AUTOSCALER_UNKNOWN = Gauge(
    "kubechat_operator_autoscaler_unknown_pods",
    "Ready model and frontend pods whose /metrics did not answer in the last round",
    ["namespace", "chatmodel"],
)
AUTOSCALER_SCALES = Counter(
    "kubechat_operator_autoscaler_scales_total", "Replica changes by the request autoscaler", ["reason"]
)
AUTOSCALER_SCRAPES = Counter(
    "kubechat_operator_autoscaler_scrapes_total",
    "Reads of pods' /metrics by the request autoscaler",
    ["target", "result"],
)
AUTOSCALER_ROUND_SECONDS = Histogram(
    "kubechat_operator_autoscaler_round_seconds",
    "Duration of one round over every request-scaled ChatModel (scrapes, decisions, writes)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10),
)
