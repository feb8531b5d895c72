{{/* The release's full name, used for every object the chart creates. */}}
{{- define "kubechat.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubechat.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kubechat.labels" -}}
{{ include "kubechat.selectorLabels" . }}
app.kubernetes.io/part-of: kubechat
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "kubechat.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubechat.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag, the tag defaulting to the chart's appVersion. Call with (list image .Chart). */}}
{{- define "kubechat.image" -}}
{{- $image := index . 0 -}}{{- $chart := index . 1 -}}
{{- printf "%s:%s" $image.repository (default $chart.AppVersion $image.tag) -}}
{{- end -}}

{{/* The operator's arguments (kubechat-operator --help): liveness and metrics ports, namespaces, leader election. */}}
{{- define "kubechat.operatorArgs" -}}
- --liveness-port={{ .Values.operator.healthPort }}
- --metrics-port={{ if .Values.metrics.enabled }}{{ .Values.metrics.port }}{{ else }}0{{ end }}
{{- range .Values.operator.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- if gt (int .Values.replicaCount) 1 }}
- --leader-elect
- --lease-name={{ include "kubechat.fullname" . }}
{{- end }}
{{- if .Values.operator.verbose }}
- --verbose
{{- end }}
{{- range .Values.operator.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}
