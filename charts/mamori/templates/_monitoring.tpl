{{/*
Monitoring helpers (docs/metrics.md). The selectors pick each deployable's series in PromQL:
by default the job names the ServiceMonitor (webhook: the Service's name) and the PodMonitor
(operator: relabelled to the operator's name) give them, in the release namespace.
*/}}
{{- define "mamori.monitoring.webhookSelector" -}}
{{- $default := printf "job=%q, namespace=%q" (include "mamori.webhook.fullname" .) (include "mamori.namespace" .) }}
{{- default $default .Values.monitoring.prometheusRule.webhookSelector }}
{{- end }}

{{- define "mamori.monitoring.operatorSelector" -}}
{{- $default := printf "job=%q, namespace=%q" (include "mamori.operator.fullname" .) (include "mamori.namespace" .) }}
{{- default $default .Values.monitoring.prometheusRule.operatorSelector }}
{{- end }}

{{/* Labels of a monitoring object: the chart's, then the ones its Prometheus selects on. */}}
{{- define "mamori.monitoring.labels" -}}
{{ include "mamori.labels" (dict "context" .context "component" .component) }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* An alert's runbook: the base URL and the alert's heading anchor in docs/metrics.md. */}}
{{- define "mamori.monitoring.runbook" -}}
{{- printf "%s#%s" .context.Values.monitoring.prometheusRule.runbookBaseUrl (lower .alert) }}
{{- end }}
