{{/* The services, in pipeline order. Every per-service object is rendered from this list. */}}
{{- define "ucoder.services" -}}
orchestrator problemgen testsynth sampler executor clusterer trainer
{{- end }}

{{/* Services that hold a GPU and the model. */}}
{{- define "ucoder.gpuServices" -}}
sampler trainer
{{- end }}

{{- define "ucoder.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-ucoder", or the release name when it already contains the chart name. */}}
{{- define "ucoder.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The name of one service's objects: (dict "root" $ "service" "executor"). */}}
{{- define "ucoder.serviceName" -}}
{{- printf "%s-%s" (include "ucoder.fullname" .root | trunc 50 | trimSuffix "-") .service }}
{{- end }}

{{- define "ucoder.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object: (dict "root" $ "component" "executor"). */}}
{{- define "ucoder.labels" -}}
helm.sh/chart: {{ include "ucoder.chart" .root }}
{{ include "ucoder.selectorLabels" . }}
app.kubernetes.io/part-of: ucoder
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- define "ucoder.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ucoder.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The image of a service: (dict "root" $ "service" "executor"). */}}
{{- define "ucoder.image" -}}
{{- $svc := index .root.Values .service }}
{{- $tag := $svc.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- printf "%s%s:%s" .root.Values.image.registry $svc.image.repository $tag }}
{{- end }}

{{/* The NATS service of the official chart: its fullname rule, on port 4222. */}}
{{- define "ucoder.natsHost" -}}
{{- if contains "nats" .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-nats" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* UCODER_NATS_URL (the bundled NATS, an external URL, or a key of an existing Secret), then
the NATS credential and TLS files of natsAuth. */}}
{{- define "ucoder.natsEnv" -}}
- name: UCODER_NATS_URL
{{- if .Values.nats.enabled }}
  value: {{ printf "%s://%s:4222" (ternary "tls" "nats" .Values.natsAuth.tls.enabled) (include "ucoder.natsHost" .) | quote }}
{{- else if .Values.externalNats.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalNats.existingSecret }}
      key: {{ .Values.externalNats.secretKey }}
{{- else if .Values.externalNats.url }}
  value: {{ .Values.externalNats.url | quote }}
{{- else }}
{{- fail "nats: set nats.enabled=true, externalNats.url or externalNats.existingSecret" }}
{{- end }}
{{- $auth := .Values.natsAuth }}
{{- if ne $auth.type "none" }}
{{- $secret := required (printf "natsAuth.existingSecret: name the Secret that holds the NATS %s" $auth.type) $auth.existingSecret }}
{{- if eq $auth.type "token" }}
- name: UCODER_NATS_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: {{ $auth.tokenKey | quote }}}
{{- else }}
- name: UCODER_NATS_USER
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: {{ $auth.userKey | quote }}}
- name: UCODER_NATS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: {{ $auth.passwordKey | quote }}}
{{- end }}
{{- end }}
{{- if $auth.tls.enabled }}
- {name: UCODER_NATS_TLS_CA, value: {{ printf "/etc/ucoder/nats-tls/%s" $auth.tls.caKey | quote }}}
{{- if $auth.tls.clientCertificate }}
- {name: UCODER_NATS_TLS_CERT, value: /etc/ucoder/nats-tls/tls.crt}
- {name: UCODER_NATS_TLS_KEY, value: /etc/ucoder/nats-tls/tls.key}
{{- end }}
{{- end }}
{{- end }}

{{/* The mount of natsAuth's TLS Secret (empty without NATS TLS). */}}
{{- define "ucoder.natsVolumeMounts" -}}
{{- if .Values.natsAuth.tls.enabled }}
- {name: nats-tls, mountPath: /etc/ucoder/nats-tls, readOnly: true}
{{- end }}
{{- end }}

{{- define "ucoder.natsVolumes" -}}
{{- if .Values.natsAuth.tls.enabled }}
- name: nats-tls
  secret:
    secretName: {{ required "natsAuth.tls.secretName: name the Secret that holds the NATS CA" .Values.natsAuth.tls.secretName | quote }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/* Whether the orchestrator serves gRPC over TLS ("true" or ""). */}}
{{- define "ucoder.grpcTLS" -}}
{{- if .Values.grpcAuth.tls.enabled }}true{{ end }}
{{- end }}

{{/* gRPC authentication of one service: (dict "root" $ "service" "orchestrator"). Every service
checks the token; the orchestrator serves TLS, its probes use the plaintext health-only port. */}}
{{- define "ucoder.grpcAuthEnv" -}}
{{- $grpc := .root.Values.grpcAuth }}
{{- with $grpc.token.existingSecret }}
- name: UCODER_GRPC_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ . | quote }}, key: {{ $grpc.token.key | quote }}}
{{- end }}
{{- if and (eq .service "orchestrator") $grpc.tls.enabled }}
- {name: UCODER_GRPC_TLS_CERT, value: /etc/ucoder/grpc-tls/tls.crt}
- {name: UCODER_GRPC_TLS_KEY, value: /etc/ucoder/grpc-tls/tls.key}
{{- if $grpc.tls.clientCA }}
- {name: UCODER_GRPC_TLS_CLIENT_CA, value: /etc/ucoder/grpc-tls/ca.crt}
{{- end }}
- {name: UCODER_GRPC_HEALTH_PORT, value: "50052"}
{{- end }}
{{- end }}

{{/* The pod's security context: non-root, the image's uid, the runtime's seccomp profile. */}}
{{- define "ucoder.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Every container: no privilege escalation, no capabilities, read-only root filesystem. */}}
{{- define "ucoder.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "ucoder.serviceAccountName" -}}
{{- if .root.Values.serviceAccount.create }}
{{- include "ucoder.serviceName" . }}
{{- else }}
{{- "default" }}
{{- end }}
{{- end }}
