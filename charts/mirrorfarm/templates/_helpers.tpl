{{/* Names and labels. */}}
{{- define "mirrorfarm.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mirrorfarm.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mirrorfarm.labels" -}}
{{ include "mirrorfarm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ .Values.mode }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "mirrorfarm.identitySecret" -}}
{{- .Values.identity.existingSecret | default (printf "%s-identity" (include "mirrorfarm.fullname" .)) -}}
{{- end -}}

{{- define "mirrorfarm.adminSecret" -}}
{{- .Values.admin.existingSecret | default (printf "%s-admin" (include "mirrorfarm.fullname" .)) -}}
{{- end -}}

{{/* The public HTTPS URL: baseUrl, else https://<ingress.host>. A mirror cannot run without one. */}}
{{- define "mirrorfarm.baseUrl" -}}
{{- if .Values.baseUrl -}}
{{- .Values.baseUrl | trimSuffix "/" -}}
{{- else if .Values.ingress.host -}}
{{- printf "https://%s" .Values.ingress.host -}}
{{- end -}}
{{- end -}}

{{- define "mirrorfarm.sshPublicHost" -}}
{{- if .Values.ssh.publicHost -}}
{{- .Values.ssh.publicHost -}}
{{- else if .Values.ingress.host -}}
{{- .Values.ingress.host -}}
{{- else -}}
{{- $u := include "mirrorfarm.baseUrl" . -}}
{{- if $u }}{{ (urlParse $u).hostname }}{{ end -}}
{{- end -}}
{{- end -}}

{{/* Refuses combinations that would deploy something that cannot work, naming the value to change. */}}
{{- define "mirrorfarm.validate" -}}
{{- if and (eq .Values.mode "primary") (gt (int .Values.replicaCount) 1) -}}
{{- fail (printf "replicaCount=%d: a primary runs one node; only a mirror farm (mode: mirror, clustering.enabled: true) scales out" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if and (eq .Values.mode "primary") .Values.clustering.enabled -}}
{{- fail "clustering.enabled: true needs mode: mirror (a primary is one node)" -}}
{{- end -}}
{{- if and (eq .Values.mode "mirror") (gt (int .Values.replicaCount) 1) (not .Values.clustering.enabled) -}}
{{- fail (printf "replicaCount=%d needs clustering.enabled: true (the nodes of a mirror farm share one identity)" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if eq .Values.mode "mirror" -}}
{{- if not .Values.mirror.upstreamUrl -}}
{{- fail "mode: mirror needs mirror.upstreamUrl, the https:// URL of the primary" -}}
{{- end -}}
{{- if not (hasPrefix "https://" (include "mirrorfarm.baseUrl" .)) -}}
{{- fail "mode: mirror needs its own https:// address: set ingress.host (with ingress.create and ingress.tlsSecretName) or baseUrl" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.ingress.create (not .Values.ingress.host) -}}
{{- fail "ingress.create: true needs ingress.host" -}}
{{- end -}}
{{- if and .Values.trust.caBundle.secretName .Values.trust.caBundle.configMapName -}}
{{- fail "trust.caBundle: set secretName or configMapName, not both" -}}
{{- end -}}
{{- end -}}
