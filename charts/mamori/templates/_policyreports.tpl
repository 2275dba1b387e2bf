{{/*
The PolicyReport CRDs (wgpolicyk8s.io/v1alpha2, the Kubernetes Policy WG's API), written for
this chart. Installed only when policyReports.enabled and .installCRDs are set and the cluster
has no such CRD, or has the one this release installed: a CRD another release or tool (Kyverno,
Policy Reporter, Trivy's adapter) installed is never taken over. Kept on uninstall, since other
tools' reports may live in it.
*/}}

{{/* True (non-empty) when this release should render the CRD named by .name. */}}
{{- define "mamori.policyReports.installCRD" -}}
{{- $values := .context.Values.policyReports -}}
{{- if and $values.enabled $values.installCRDs -}}
{{- $existing := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" .name -}}
{{- if not $existing -}}
true
{{- else -}}
{{- $annotations := $existing.metadata.annotations | default dict -}}
{{- if and (eq (get $annotations "meta.helm.sh/release-name") .context.Release.Name) (eq (get $annotations "meta.helm.sh/release-namespace") .context.Release.Namespace) -}}
true
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/* An object reference: which object a report or a result is about. */}}
{{- define "mamori.policyReports.objectReference" -}}
type: object
x-kubernetes-map-type: atomic
properties:
  apiVersion:
    type: string
  kind:
    type: string
  name:
    type: string
  namespace:
    type: string
  uid:
    type: string
  resourceVersion:
    type: string
  fieldPath:
    type: string
{{- end }}

{{/* A label selector (matchLabels, matchExpressions). */}}
{{- define "mamori.policyReports.labelSelector" -}}
type: object
x-kubernetes-map-type: atomic
properties:
  matchLabels:
    type: object
    additionalProperties:
      type: string
  matchExpressions:
    type: array
    items:
      type: object
      required: [key, operator]
      properties:
        key:
          type: string
        operator:
          type: string
        values:
          type: array
          items:
            type: string
{{- end }}

{{/* The whole object: scope, summary and results, the same for both kinds. */}}
{{- define "mamori.policyReports.schema" -}}
openAPIV3Schema:
  description: Results of policy checks, per resource, from one or more policy engines.
  type: object
  properties:
    apiVersion:
      type: string
    kind:
      type: string
    metadata:
      type: object
    scope:
      description: The one object the report is about, when it is about one.
      {{- include "mamori.policyReports.objectReference" . | nindent 6 }}
    scopeSelector:
      description: The objects the report is about, by label.
      {{- include "mamori.policyReports.labelSelector" . | nindent 6 }}
    summary:
      description: How many results have each outcome.
      type: object
      properties:
        pass:
          type: integer
        fail:
          type: integer
        warn:
          type: integer
        error:
          type: integer
        skip:
          type: integer
    results:
      type: array
      items:
        type: object
        required: [policy]
        properties:
          source:
            description: The engine that produced the result.
            type: string
          policy:
            description: The policy the result is about.
            type: string
          rule:
            description: The rule of the policy.
            type: string
          category:
            type: string
          severity:
            type: string
            enum: [critical, high, medium, low, info]
          result:
            type: string
            enum: [pass, fail, warn, error, skip]
          scored:
            description: False for an informational result.
            type: boolean
          message:
            type: string
          timestamp:
            description: When the result was first seen.
            type: object
            required: [seconds, nanos]
            properties:
              seconds:
                type: integer
                format: int64
              nanos:
                type: integer
                format: int32
          resources:
            description: The objects the result is about.
            type: array
            items:
              {{- include "mamori.policyReports.objectReference" . | nindent 14 }}
          resourceSelector:
            {{- include "mamori.policyReports.labelSelector" . | nindent 12 }}
          properties:
            description: Anything else the engine has to say, as strings.
            type: object
            additionalProperties:
              type: string
{{- end }}

{{/* kubectl get polr / cpolr: the counts of each outcome. */}}
{{- define "mamori.policyReports.columns" -}}
- name: Kind
  type: string
  jsonPath: .scope.kind
  priority: 1
- name: Name
  type: string
  jsonPath: .scope.name
  priority: 1
- name: Pass
  type: integer
  jsonPath: .summary.pass
- name: Fail
  type: integer
  jsonPath: .summary.fail
- name: Warn
  type: integer
  jsonPath: .summary.warn
- name: Error
  type: integer
  jsonPath: .summary.error
- name: Skip
  type: integer
  jsonPath: .summary.skip
- name: Age
  type: date
  jsonPath: .metadata.creationTimestamp
{{- end }}

{{/* One of the two CRDs: .kind, .plural, .singular, .shortName, .scope. */}}
{{- define "mamori.policyReports.crd" -}}
{{- $name := printf "%s.wgpolicyk8s.io" .plural -}}
{{- if include "mamori.policyReports.installCRD" (dict "context" .context "name" $name) -}}
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {{ $name }}
  labels:
    {{- include "mamori.labels" (dict "context" .context "component" "policy-reports") | nindent 4 }}
  annotations:
    # Other tools' reports may live in it: uninstalling mamori must not delete them.
    helm.sh/resource-policy: keep
spec:
  group: wgpolicyk8s.io
  scope: {{ .scope }}
  names:
    kind: {{ .kind }}
    listKind: {{ .kind }}List
    plural: {{ .plural }}
    singular: {{ .singular }}
    shortNames: [{{ .shortName }}]
  versions:
    - name: v1alpha2
      served: true
      storage: true
      additionalPrinterColumns:
        {{- include "mamori.policyReports.columns" . | nindent 8 }}
      schema:
        {{- include "mamori.policyReports.schema" . | nindent 8 }}
{{- end }}
{{- end }}
