{{/* The chart's name, and the release's full name (at most 63 characters). */}}
{{- define "sunset.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sunset.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sunset.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sunset.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sunset.labels" -}}
{{ include "sunset.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "sunset.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sunset.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Refuses values that would start replicas unable to share their keys or data. */}}
{{- define "sunset.check" -}}
{{- if not .Values.database.existingSecret -}}
{{- fail "database.existingSecret: name the Secret holding the PostgreSQL URL" -}}
{{- end -}}
{{- if not .Values.serviceKey.existingSecret -}}
{{- fail "serviceKey.existingSecret: name the Secret holding the service key (sunset keys create-service-key)" -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.objectStorage.url) -}}
{{- fail "objectStorage.url: several replicas keep artifacts in object storage (s3://bucket/prefix)" -}}
{{- end -}}
{{- if not .Values.hsm.enabled -}}
{{- if or (gt (int .Values.replicaCount) 1) (not .Values.persistence.enabled) -}}
{{- fail "hsm.enabled: the key-encryption keys need an HSM, or persistence.enabled with replicaCount 1" -}}
{{- end -}}
{{- else if not .Values.hsm.pinSecret -}}
{{- fail "hsm.pinSecret: name the Secret holding the PKCS#11 user PIN" -}}
{{- end -}}
{{- end -}}
