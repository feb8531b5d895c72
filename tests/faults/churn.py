"""ChatModel churn (create, update, delete at random) and the check that the cluster has converged to what
was declared: the fault tests and bench/soak share it. Sizes come from the environment so the soak runs
the same tests bigger (KUBECHAT_FAULT_MODELS, KUBECHAT_FAULT_KILLS, KUBECHAT_FAULT_OUTAGE_S)."""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field

from operator_harness import Kubectl

MODELS = int(os.environ.get("KUBECHAT_FAULT_MODELS", "12"))
KILLS = int(os.environ.get("KUBECHAT_FAULT_KILLS", "4"))
OUTAGE_S = float(os.environ.get("KUBECHAT_FAULT_OUTAGE_S", "30"))
MANAGED = "app.kubernetes.io/managed-by=kubechat-operator"
# Children of one ChatModel: kind -> how many (the config and the load-progress ConfigMaps).
CHILDREN = {
    "deployments": 1,
    "services": 1,
    "serviceaccounts": 1,
    "roles": 1,
    "rolebindings": 1,
    "configmaps": 2,
}


def chat_model(name: str, max_new_tokens: int) -> str:
    return f"""apiVersion: kubechat.dev/v1alpha1
kind: ChatModel
metadata: {{name: {name}}}
spec:
  model: {{id: microsoft/GODEL-v1_1-base-seq2seq}}
  generation: {{maxNewTokens: {max_new_tokens}}}
"""


@dataclass
class Churn:
    """The declared state (name -> maxNewTokens) and the moves that change it."""

    kubectl: Kubectl
    rng: random.Random
    declared: dict[str, int] = field(default_factory=dict)
    created: int = 0

    def create(self, count: int) -> None:
        names = [f"m{self.created + i}" for i in range(count)]
        self.created += count
        for name in names:
            self.declared[name] = self.rng.randint(16, 256)
        self.kubectl.apply("---\n".join(chat_model(n, self.declared[n]) for n in names))

    def update(self, count: int) -> None:
        names = self.rng.sample(sorted(self.declared), min(count, len(self.declared)))
        for name in names:
            self.declared[name] = self.rng.randint(16, 256)
        if names:
            self.kubectl.apply("---\n".join(chat_model(n, self.declared[n]) for n in names))

    def delete(self, count: int) -> None:
        names = self.rng.sample(sorted(self.declared), min(count, len(self.declared)))
        for name in names:
            del self.declared[name]
        if names:
            self.kubectl("delete", "chatmodel", *names, "--wait=false")

    def step(self) -> str:
        """One random move, keeping roughly MODELS ChatModels declared."""
        move = self.rng.choice(["create", "update", "update", "delete"])
        if move == "create" or len(self.declared) < MODELS // 2:
            move = "create"
            self.create(self.rng.randint(1, 3))
        elif move == "update":
            self.update(self.rng.randint(1, 4))
        else:
            self.delete(self.rng.randint(1, 2))
        return move


def divergence(kubectl: Kubectl, declared: dict[str, int]) -> list[str]:
    """What differs from the declared state (empty once converged): unknown or missing ChatModels, status
    not Ready for the current generation, a stale config, duplicate, missing or orphaned children."""
    problems = []
    models = {m["metadata"]["name"]: m for m in kubectl.items("chatmodels")}
    if set(models) != set(declared):
        problems.append(f"ChatModels {sorted(models)} != declared {sorted(declared)}")
    for name, model in models.items():
        status = model.get("status") or {}
        ready = {c["type"]: c for c in status.get("conditions", [])}.get("Ready", {})
        if status.get("phase") != "Ready" or ready.get("status") != "True":
            problems.append(f"{name}: phase {status.get('phase')} {status.get('reason', '')}")
        if status.get("observedGeneration") != model["metadata"]["generation"]:
            problems.append(
                f"{name}: observed {status.get('observedGeneration')} of {model['metadata']['generation']}"
            )
    for kind, per_model in CHILDREN.items():
        owners = Counter(
            item["metadata"]["labels"].get("kubechat.dev/chatmodel") for item in kubectl.items(kind, MANAGED)
        )
        wrong = {o: n for o, n in owners.items() if n != per_model or o not in declared}
        missing = set(declared) - set(owners)
        if wrong or missing:
            problems.append(f"{kind}: wrong counts or orphans {wrong}, missing {sorted(missing)}")
    configs = {c["metadata"]["name"]: c.get("data", {}) for c in kubectl.items("configmaps", MANAGED)}
    for name, tokens in declared.items():
        got = configs.get(f"{name}-config", {}).get("KUBECHAT_MAX_NEW_TOKENS")
        if got != str(tokens):
            problems.append(f"{name}-config: KUBECHAT_MAX_NEW_TOKENS {got} != {tokens}")
    pods = Counter(p["metadata"]["labels"].get("kubechat.dev/chatmodel") for p in kubectl.items("pods"))
    extra = {o: n for o, n in pods.items() if n != 1 or o not in declared}
    if extra or set(declared) - set(pods):
        problems.append(f"pods: {extra}, missing {sorted(set(declared) - set(pods))}")
    return problems
