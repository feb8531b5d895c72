{{/*
The operator's permissions, rule by rule from what operator/kubechat_operator does (kube.py's requests and
kopf's watches). tests/integration/packaging runs the operator with a token of the chart's ServiceAccount,
so a missing rule fails a test.
*/}}

{{/* Cluster-scoped. kopf observes CRDs to serve resources that appear later, and lists namespaces only when
it watches named namespaces (watching the whole cluster needs no namespace list). */}}
{{- define "kubechat.clusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- if .Values.operator.watchNamespaces }}
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
{{- end -}}

{{/* Namespaced: what the reconciles read and write for each ChatModel / ChatFrontend. */}}
{{- define "kubechat.namespacedRules" -}}
# The custom resources: watched; only their status is written.
- apiGroups: [kubechat.dev]
  resources: [chatmodels, chatfrontends]
  verbs: [get, list, watch]
- apiGroups: [kubechat.dev]
  resources: [chatmodels/status, chatfrontends/status]
  verbs: [patch]
# The request autoscaler sets a ChatModel's replicas through its scale subresource (the spec stays the user's).
- apiGroups: [kubechat.dev]
  resources: [chatmodels/scale]
  verbs: [patch]
# Children: server-side apply creates (the apiserver checks `create` when the object is new) and repairs
# them (`patch`), drift is watched, dropped ones are pruned.
- apiGroups: [""]
  resources: [configmaps, services, serviceaccounts, persistentvolumeclaims]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies, ingresses]
  verbs: [get, list, watch, create, patch, delete]
# Each ChatModel's pods get a Role allowing get/patch on their progress ConfigMap, each ChatFrontend's pods one
# allowing get/list/watch on chatmodels (to show a model waking). The apiserver lets the
# operator create a Role only with permissions it holds itself, and bind one only if it holds them too: without
# the escalate and bind verbs (never granted here) it cannot hand anyone, itself included, more than this list.
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, watch, create, patch, delete]
# Status comes from the pods and, for pods stuck creating, their Warning events (FailedMount, Multi-Attach).
# No Secret reads: a missing Secret shows as the kubelet's CreateContainerConfigError on the pods.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [""]
  # A ChatFrontend's session-key Secret is created once; never read, listed or patched (409 = it exists).
  resources: [secrets]
  verbs: [create]
- apiGroups: [""]
  resources: [events]
  verbs: [list, create, patch]
{{- end -}}

{{/* Leader election (replicaCount > 1): the Lease in the release's namespace. */}}
{{- define "kubechat.leaseRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
{{- end -}}
