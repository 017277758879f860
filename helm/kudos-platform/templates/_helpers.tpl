{{- define "kudos.env" -}}
- name: REDIS_ADDR
  value: {{ .Values.redis.address | quote }}
- name: JWT_ALGORITHM
  value: {{ .Values.auth.algorithm | quote }}
- name: JWT_ISSUER
  value: {{ .Values.auth.issuer | quote }}
- name: JWT_AUDIENCE
  value: {{ .Values.auth.audience | quote }}
- name: JWT_KEY
  valueFrom: {secretKeyRef: {name: {{ .Values.auth.existingSecret }}, key: jwt-key}}
- name: SERVICE_TOKEN_SECRET
  valueFrom: {secretKeyRef: {name: {{ .Values.auth.existingSecret }}, key: service-token-secret}}
# Never the public development secrets in a cluster.
- name: KUDOS_DEV_INSECURE_DEFAULTS
  value: "0"
- name: JWT_MAX_TOKEN_LIFETIME_S
  value: {{ .Values.auth.maxTokenLifetimeSeconds | quote }}
- name: GRPC_MAX_THREADS
  value: {{ .Values.grpc.maxThreads | quote }}
- name: GRPC_MAX_MEMORY_BYTES
  value: {{ .Values.grpc.maxMemoryBytes | quote }}
- name: LEDGER_ADDR
  value: "{{ .Release.Name }}-ledger:{{ .Values.services.ledger.port }}"
- name: KUDOS_ADDR
  value: "{{ .Release.Name }}-kudos:{{ .Values.services.kudos.port }}"
- name: LEADERBOARD_ADDR
  value: "{{ .Release.Name }}-leaderboard:{{ .Values.services.leaderboard.port }}"
{{- end -}}
