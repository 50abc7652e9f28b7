{{/* Names, labels and the pieces every template shares. */}}

{{- define "bandit-router.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's base name, cut so that "-ingester" still fits a 63-character name. */}}
{{- define "bandit-router.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "bandit-router.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bandit-router.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "bandit-router.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "bandit-router.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: bandit-router
{{- end -}}

{{- define "bandit-router.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "bandit-router.serviceAccountName" -}}
{{- $component := index . 1 -}}
{{- with index . 0 -}}
{{- $account := index .Values.serviceAccount $component -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-%s" (include "bandit-router.fullname" .) $component) $account.name -}}
{{- else -}}
{{- default "default" $account.name -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "bandit-router.secretName" -}}
{{- if .Values.secrets.create -}}
{{- include "bandit-router.fullname" . -}}
{{- else -}}
{{- required "secrets.existingSecret: name the Secret to read (or set secrets.create: true)" .Values.secrets.existingSecret -}}
{{- end -}}
{{- end -}}

{{/*
The store URL: the bundled Redis's Service or redis.external.url, exactly one of them.
The URL is written into the ConfigMap, so one with a password is refused.
*/}}
{{- define "bandit-router.storeUrl" -}}
{{- $external := .Values.redis.external.url -}}
{{- if and $external .Values.redis.bundled.enabled -}}
{{- fail "redis: set redis.bundled.enabled to false when redis.external.url is given (one Redis, not two)" -}}
{{- else if $external -}}
{{- $parts := urlParse $external -}}
{{- if not (has $parts.scheme (list "redis" "rediss")) -}}
{{- fail (printf "redis.external.url: must be redis://host:port/db or rediss://host:port/db, got %q" $external) -}}
{{- end -}}
{{- if $parts.userinfo -}}
{{- fail "redis.external.url: must carry no user or password: the URL is stored in a ConfigMap, in clear" -}}
{{- end -}}
{{- $external -}}
{{- else if .Values.redis.bundled.enabled -}}
{{- printf "redis://%s-redis:%d/0" (include "bandit-router.fullname" .) (int .Values.redis.bundled.port) -}}
{{- else -}}
{{- fail "redis: enable redis.bundled or set redis.external.url (router replicas and the ingester share one Redis)" -}}
{{- end -}}
{{- end -}}

{{/* The spool file, under the router's spool volume. */}}
{{- define "bandit-router.spoolPath" -}}
{{- printf "%s/decisions.jsonl" (trimSuffix "/" .Values.router.spool.mountPath) -}}
{{- end -}}

{{/*
The configuration file: .Values.config with the store and the spool path filled in.
Refuses what would not work in a pod, naming the value to change.
*/}}
{{- define "bandit-router.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- if hasKey $config "store" -}}
{{- fail "config.store: leave it out; the chart fills it from redis.bundled or redis.external.url" -}}
{{- end -}}
{{- $_ := set $config "store" (include "bandit-router.storeUrl" .) -}}
{{- $log := dict -}}
{{- if hasKey $config "decision_log" -}}
{{- $log = get $config "decision_log" -}}
{{- end -}}
{{- $mount := printf "%s/" (trimSuffix "/" .Values.router.spool.mountPath) -}}
{{- if hasKey $log "spool_path" -}}
{{- if not (hasPrefix $mount (toString $log.spool_path)) -}}
{{- fail (printf "config.decision_log.spool_path: must lie under router.spool.mountPath (%s), the only writable directory of the router; got %q" $mount $log.spool_path) -}}
{{- end -}}
{{- else -}}
{{- $_ := set $log "spool_path" (include "bandit-router.spoolPath" .) -}}
{{- end -}}
{{- $_ := set $config "decision_log" $log -}}
{{- with $config.archive -}}
{{- if not (hasPrefix "s3://" (toString .path)) -}}
{{- fail (printf "config.archive.path: use s3://bucket/prefix in Kubernetes (the ingester's filesystem is read-only and lost with its pod), got %q" .path) -}}
{{- end -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* Whether the config runs an archiver or a weights push: work that holds no lease. */}}
{{- define "bandit-router.unleasedWork" -}}
{{- if .Values.config.archive -}}archive{{- end -}}
{{- range .Values.config.experiments -}}
{{- if and .weights_push .weights_push.enabled -}}
{{- printf " weights_push of %s" .name -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Environment both components share: the region, unbuffered logs, and a HOME that
exists (the pod's UID may have no passwd entry; libraries look for ~, boto3's ~/.aws).
*/}}
{{- define "bandit-router.awsEnv" -}}
- name: AWS_REGION
  value: {{ required "aws.region: name the SageMaker endpoints' region" .Values.aws.region | quote }}
- name: AWS_DEFAULT_REGION
  value: {{ .Values.aws.region | quote }}
- name: PYTHONUNBUFFERED
  value: "1"
- name: HOME
  value: /tmp
{{- end -}}
