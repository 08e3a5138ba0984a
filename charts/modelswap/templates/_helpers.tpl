{{/* Names, labels and images shared by the templates. */}}
{{- define "modelswap.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelswap.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "modelswap.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "modelswap.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "modelswap.labels" -}}
app.kubernetes.io/name: {{ include "modelswap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "modelswap.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelswap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "modelswap.operatorImage" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) -}}
{{- end -}}

{{- define "modelswap.sidecarImage" -}}
{{- printf "%s:%s" .Values.sidecar.image.repository (default .Chart.AppVersion .Values.sidecar.image.tag) -}}
{{- end -}}

{{- define "modelswap.webhookService" -}}
{{- printf "%s-webhook" (include "modelswap.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelswap.webhookSecret" -}}
{{- default (printf "%s-webhook-tls" (include "modelswap.fullname" .)) .Values.webhook.certificates.secretName -}}
{{- end -}}

{{- define "modelswap.webhookConfig" -}}
{{- include "modelswap.fullname" . -}}
{{- end -}}

{{- define "modelswap.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modelswap.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "modelswap.metricsService" -}}
{{- printf "%s-metrics" (include "modelswap.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelswap.nodeCacheName" -}}
{{- printf "%s-node-cache" (include "modelswap.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelswap.nodeCacheSelectorLabels" -}}
app.kubernetes.io/name: {{ include "modelswap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: node-cache
{{- end -}}
