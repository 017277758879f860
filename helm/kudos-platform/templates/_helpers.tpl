{{/* Labels of one component: (dict "root" $ "name" "ledger") */}}
{{- define "kudos.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: kudos-platform
{{- end -}}

{{/* The Redis address the services connect to. */}}
{{- define "kudos.redisAddress" -}}
{{- if .Values.redis.deploy -}}
{{ .Release.Name }}-redis-0.{{ .Release.Name }}-redis:{{ .Values.redis.port }}
{{- else -}}
{{ join "," .Values.redis.seeds }}
{{- end -}}
{{- end -}}

{{/* "true" when the service (dict "root" $ "name" "kudos") holds the delegation secret:
     integrations mints delegated tokens, kudos and ledger accept them. Never the gateway. */}}
{{- define "kudos.delegates" -}}
{{- if and .root.Values.auth.delegation.existingSecret (or (eq .name "integrations") (eq .name "kudos") (eq .name "ledger")) -}}
true
{{- end -}}
{{- end -}}

{{/* Environment of every service: (dict "root" $ "name" "ledger"). Secrets come from files
     (JWT_KEY_FILE, SERVICE_TOKEN_SECRET_FILE, REDIS_PASSWORD_FILE), never the environment. */}}
{{- define "kudos.env" -}}
- name: JWT_ALGORITHM
  value: {{ .root.Values.auth.algorithm | quote }}
- name: JWT_ISSUER
  value: {{ .root.Values.auth.issuer | quote }}
- name: JWT_AUDIENCE
  value: {{ .root.Values.auth.audience | quote }}
- name: JWT_KEY_FILE
  value: /run/secrets/kudos/jwt-key
- name: SERVICE_TOKEN_SECRET_FILE
  value: /run/secrets/kudos/service-token-secret
{{- if include "kudos.delegates" . }}
# Delegated tokens (integrations acting for a person): only the services that mint or
# accept them hold this secret, never the gateway.
- name: DELEGATION_TOKEN_SECRET_FILE
  value: /run/secrets/delegation/delegation-token-secret
{{- end }}
# Never the public development secrets in a cluster.
- name: KUDOS_DEV_INSECURE_DEFAULTS
  value: "0"
- name: JWT_MAX_TOKEN_LIFETIME_S
  value: {{ .root.Values.auth.maxTokenLifetimeSeconds | quote }}
{{- if ne .name "gateway" }}
- name: GRPC_MAX_THREADS
  value: {{ .root.Values.grpc.maxThreads | quote }}
- name: GRPC_MAX_MEMORY_BYTES
  value: {{ .root.Values.grpc.maxMemoryBytes | quote }}
- name: SHUTDOWN_GRACE_MS
  value: {{ .root.Values.grpc.shutdownGraceMs | quote }}
- name: REDIS_ADDR
  value: {{ include "kudos.redisAddress" .root | quote }}
- name: REDIS_PASSWORD_FILE
  value: /run/secrets/redis/password
{{- if .root.Values.redis.auth.username }}
- name: REDIS_USERNAME
  value: {{ .root.Values.redis.auth.username | quote }}
{{- end }}
{{- end }}
{{- if eq .name "leaderboard" }}
# Stable per pod: a restarted replica resumes its own pending stream entries.
- name: LEADERBOARD_CONSUMER
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
{{- end }}
{{- end -}}

{{/* Pod-level security: non-root, the runtime's default seccomp profile. */}}
{{- define "kudos.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* Container-level security: nothing written outside mounted volumes, no capabilities. */}}
{{- define "kudos.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}
