{{/*
Names. The chart's full name is "<release>-mamori" unless the release is already called mamori;
every object is named from it, so two releases in one cluster never collide.
*/}}
{{- define "mamori.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mamori.fullname" -}}
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

{{- define "mamori.namespace" -}}
{{- .Release.Namespace }}
{{- end }}

{{- define "mamori.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Per-component names (suffixes kept short: names end up in DNS labels). */}}
{{- define "mamori.webhook.fullname" -}}
{{- printf "%s-webhook" (include "mamori.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mamori.operator.fullname" -}}
{{- printf "%s-operator" (include "mamori.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mamori.webhook.serviceAccountName" -}}
{{- if .Values.webhook.serviceAccount.create }}
{{- default (include "mamori.webhook.fullname" .) .Values.webhook.serviceAccount.name }}
{{- else }}
{{- required "webhook.serviceAccount.name is required when webhook.serviceAccount.create is false" .Values.webhook.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mamori.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "mamori.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator's identity as the API server names it to webhooks (request.userInfo). */}}
{{- define "mamori.operator.username" -}}
{{- printf "system:serviceaccount:%s:%s" (include "mamori.namespace" .) (include "mamori.operator.serviceAccountName" .) }}
{{- end }}

{{/* The Secret the webhook mounts (tls.crt, tls.key, ca.crt), whoever issues it. */}}
{{- define "mamori.webhook.tlsSecret" -}}
{{- printf "%s-tls" (include "mamori.webhook.fullname" .) }}
{{- end }}

{{/* The operator's CA Secret (certificates.mode=operator), or cert-manager's CA (certManager). */}}
{{- define "mamori.webhook.caSecret" -}}
{{- printf "%s-ca" (include "mamori.webhook.fullname" .) }}
{{- end }}

{{- define "mamori.webhook.configurationName" -}}
{{- include "mamori.fullname" . }}
{{- end }}

{{- define "mamori.operator.leaseName" -}}
{{- include "mamori.operator.fullname" . }}
{{- end }}

{{/*
Labels: the recommended app.kubernetes.io set, from this one helper. Call with
(dict "context" $ "component" "webhook").
*/}}
{{- define "mamori.labels" -}}
helm.sh/chart: {{ include "mamori.chart" .context }}
{{ include "mamori.selectorLabels" . }}
app.kubernetes.io/version: {{ .context.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
app.kubernetes.io/part-of: mamori
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The subset that never changes across upgrades (Deployment selectors are immutable). */}}
{{- define "mamori.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mamori.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/* The image, by digest when one is given (recommended: what runs is what was scanned). */}}
{{- define "mamori.image" -}}
{{- $image := .Values.image }}
{{- $tag := default .Chart.AppVersion $image.tag }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The webhook configuration's namespaceSelector: never the cluster's own namespaces (a webhook
that is down must not stop kube-system), nor mamori's (it must be able to heal itself).
*/}}
{{- define "mamori.webhook.namespaceSelector" -}}
{{- $excluded := concat (list) .Values.webhook.excludedNamespaces }}
{{- if .Values.webhook.excludeReleaseNamespace }}
{{- $excluded = append $excluded (include "mamori.namespace" .) }}
{{- end }}
{{- $expressions := list }}
{{- if $excluded }}
{{- $expressions = append $expressions (dict "key" "kubernetes.io/metadata.name" "operator" "NotIn" "values" (uniq $excluded)) }}
{{- end }}
{{- $expressions = concat $expressions (.Values.webhook.namespaceSelector.matchExpressions | default list) }}
{{- with .Values.webhook.namespaceSelector.matchLabels }}
matchLabels:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $expressions }}
matchExpressions:
  {{- toYaml $expressions | nindent 2 }}
{{- end }}
{{- end }}

{{/*
What every entry of the ValidatingWebhookConfiguration shares: where the API server calls (the
Service, or webhook.urlOverride), how it fails, and which namespaces and objects it sends. One
definition, so the entries can never drift apart. caBundle is not rendered: the operator
(certificates.mode=operator) or cert-manager's injector keeps it in every entry, and helm
upgrades leave it alone. sideEffects: the webhook posts Events about its answers
(webhook.events.enabled), never for a dry run, so NoneOnDryRun.
*/}}
{{- define "mamori.webhook.sharedFields" -}}
{{- $webhook := .Values.webhook -}}
admissionReviewVersions: ["v1"]
sideEffects: {{ if $webhook.events.enabled }}NoneOnDryRun{{ else }}None{{ end }}
failurePolicy: {{ $webhook.failurePolicy }}
timeoutSeconds: {{ $webhook.timeoutSeconds }}
matchPolicy: {{ $webhook.matchPolicy }}
clientConfig:
  {{- if $webhook.urlOverride }}
  url: {{ $webhook.urlOverride | quote }}
  {{- else }}
  service:
    name: {{ include "mamori.webhook.fullname" . }}
    namespace: {{ include "mamori.namespace" . }}
    path: /validate
    port: {{ $webhook.service.port }}
  {{- end }}
{{- with (include "mamori.webhook.namespaceSelector" . | fromYaml) }}
namespaceSelector:
  {{- toYaml . | nindent 2 }}
{{- else }}
namespaceSelector: {}
{{- end }}
{{- $objects := $webhook.objectSelector }}
{{- if or $objects.matchLabels $objects.matchExpressions }}
objectSelector:
  {{- with $objects.matchLabels }}
  matchLabels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $objects.matchExpressions }}
  matchExpressions:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- else }}
objectSelector: {}
{{- end }}
{{- end }}

{{/*
A CEL match condition, true when an UPDATE adds, changes or removes an annotation under
mamori.io/ or a subdomain of it (key prefixes compared in lower case, as the webhook does: the
API server accepts any case there). Maps have no stable order, so the reserved key=value pairs
of both objects are compared as sets; "=" cannot occur in a key, so a pair names one key.
*/}}
{{- define "mamori.webhook.changesReservedAnnotations" -}}
{{- $pairs := "(has(%[1]s.metadata.annotations) ? %[1]s.metadata.annotations.filter(k, k.lowerAscii().startsWith('mamori.io/') || k.lowerAscii().contains('.mamori.io/')).map(k, k + '=' + %[1]s.metadata.annotations[k]) : [])" -}}
{{- $new := printf $pairs "object" -}}
{{- $old := printf $pairs "oldObject" -}}
{{- printf "!(%s.all(x, x in %s) && %s.all(x, x in %s))" $new $old $old $new -}}
{{- end }}

{{/* The serving certificate's DNS names: the Service's, and any extra ones. */}}
{{- define "mamori.webhook.dnsNames" -}}
{{- $service := include "mamori.webhook.fullname" . }}
{{- $namespace := include "mamori.namespace" . }}
- {{ printf "%s.%s.svc" $service $namespace }}
- {{ printf "%s.%s" $service $namespace }}
- {{ $service }}
{{- range .Values.certificates.extraHosts }}
- {{ . }}
{{- end }}
{{- end }}

{{/* Hardened security contexts shared by every container of the chart. */}}
{{- define "mamori.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "mamori.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{/*
Registry access shared by the webhook (admission) and the operator (background audit): the same
timeouts, CA bundle and credentials Secret (webhook.registry), mounted read-only as directories,
not subPaths, so that the kubelet updates a rotated Secret and both re-read it.
*/}}
{{- define "mamori.registry.env" -}}
{{- $registry := .Values.webhook.registry -}}
- name: MAMORI_REGISTRY_TIMEOUT
  value: {{ $registry.timeout | quote }}
- name: MAMORI_REGISTRY_BUDGET
  value: {{ $registry.budget | quote }}
{{- if $registry.caBundle.name }}
- name: MAMORI_REGISTRY_CA_FILE
  value: /etc/mamori/registry-ca/ca.crt
{{- end }}
{{- if $registry.credentialsSecret }}
- name: MAMORI_REGISTRY_CREDENTIALS
  value: /etc/mamori/registry-credentials/config.json
{{- end }}
{{- end }}

{{/*
The audit's share of the webhook's other credentials (webhook.registry): Amazon ECR tokens and
the running pods' own imagePullSecrets, under the operator's registry_* settings.
*/}}
{{- define "mamori.registry.auditEnv" -}}
{{- $registry := .Values.webhook.registry -}}
{{- if $registry.ecr.enabled }}
- name: MAMORI_REGISTRY_ECR_CREDENTIALS
  value: "true"
{{- with $registry.ecr.endpoint }}
- name: MAMORI_REGISTRY_ECR_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- if $registry.podPullSecrets }}
- name: MAMORI_REGISTRY_POD_PULL_SECRETS
  value: "true"
{{- end }}
{{- end }}

{{- define "mamori.registry.volumeMounts" -}}
{{- $registry := .Values.webhook.registry -}}
{{- if $registry.caBundle.name }}
- name: registry-ca
  mountPath: /etc/mamori/registry-ca
  readOnly: true
{{- end }}
{{- if $registry.credentialsSecret }}
- name: registry-credentials
  mountPath: /etc/mamori/registry-credentials
  readOnly: true
{{- end }}
{{- end }}

{{- define "mamori.registry.volumes" -}}
{{- $registry := .Values.webhook.registry -}}
{{- with $registry.caBundle }}
{{- if .name }}
- name: registry-ca
  {{- if eq .kind "Secret" }}
  secret:
    secretName: {{ .name }}
  {{- else }}
  configMap:
    name: {{ .name }}
  {{- end }}
    defaultMode: 0444
    items:
      - key: {{ .key }}
        path: ca.crt
{{- end }}
{{- end }}
{{- with $registry.credentialsSecret }}
- name: registry-credentials
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: .dockerconfigjson
        path: config.json
{{- end }}
{{- end }}
