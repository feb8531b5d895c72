{{/* Cluster-scoped: kopf watches CRDs and namespaces to know what it can serve. */}}
{{- define "kubechat.clusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end -}}

{{/* Namespaced: what the handlers read and write for each ChatModel / ChatFrontend. */}}
{{- define "kubechat.namespacedRules" -}}
# The custom resources: watch them, record handler progress (annotations/finalizers) and status.
- apiGroups: [kubechat.dev]
  resources: [chatmodels, chatfrontends]
  verbs: [get, list, watch, patch]
- apiGroups: [kubechat.dev]
  resources: [chatmodels/status, chatfrontends/status]
  verbs: [get, patch]
# The children it creates and keeps in shape.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services, configmaps, persistentvolumeclaims, serviceaccounts]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
# Model pods report load progress through a Role it creates (get/patch on one ConfigMap, which it can grant
# only because it holds those verbs itself: RBAC forbids escalation).
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, watch, create, patch, delete]
# Status comes from what the pods really do.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
