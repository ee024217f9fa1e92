{{/*
Names, labels and shared snippets of the kredun chart.
*/}}

{{/* Chart name, or nameOverride. */}}
{{- define "kredun.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of every resource name: fullnameOverride, else "<release>-<name>", else just the
release name when it already starts with <name> (avoids "kredun-kredun").
*/}}
{{- define "kredun.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "kredun.name" . -}}
{{- $full := ternary .Release.Name (printf "%s-%s" .Release.Name $name) (hasPrefix $name .Release.Name) -}}
{{- $full | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "kredun.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels. Call with (dict "ctx" $ "component" "operator").
*/}}
{{- define "kredun.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kredun.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Standard labels. Call with (dict "ctx" $ "component" "operator").
*/}}
{{- define "kredun.labels" -}}
helm.sh/chart: {{ include "kredun.chart" .ctx }}
{{ include "kredun.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: kredun
{{- end -}}

{{/* Operator image reference. */}}
{{- define "kredun.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}

{{/* Default image of job Pods. */}}
{{- define "kredun.jobs.image" -}}
{{- .Values.jobs.image | default (include "kredun.image" .) -}}
{{- end -}}

{{/* Operator ServiceAccount name. */}}
{{- define "kredun.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- .Values.operator.serviceAccount.name | default (include "kredun.fullname" .) -}}
{{- else -}}
{{- .Values.operator.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* Job Pods' ServiceAccount name. */}}
{{- define "kredun.jobs.serviceAccountName" -}}
{{- if .Values.jobs.serviceAccount.create -}}
{{- .Values.jobs.serviceAccount.name | default (printf "%s-jobs" (include "kredun.fullname" .) | trunc 63 | trimSuffix "-") -}}
{{- else -}}
{{- .Values.jobs.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* true when kopf peering is on (more than one operator replica). */}}
{{- define "kredun.peering" -}}
{{- if gt (int .Values.operator.replicas) 1 -}}true{{- end -}}
{{- end -}}

{{/*
Namespaces the operator watches, as a JSON list (use with fromJsonArray); empty when
cluster-wide. Defaults to the release namespace.
*/}}
{{- define "kredun.watchNamespaces" -}}
{{- if .Values.operator.watch.clusterWide -}}
{{- list | toJson -}}
{{- else if .Values.operator.watch.namespaces -}}
{{- .Values.operator.watch.namespaces | uniq | toJson -}}
{{- else -}}
{{- list .Release.Namespace | toJson -}}
{{- end -}}
{{- end -}}

{{/* Name of the value store's PersistentVolumeClaim. */}}
{{- define "kredun.pvc.claimName" -}}
{{- .Values.valueStore.pvc.existingClaim | default (printf "%s-values" (include "kredun.fullname" .) | trunc 63 | trimSuffix "-") -}}
{{- end -}}

{{/* Value store URI (KREDUN_VALUE_STORE). */}}
{{- define "kredun.valueStore.uri" -}}
{{- if eq .Values.valueStore.type "s3" -}}
{{- $prefix := .Values.valueStore.s3.prefix | trimAll "/" -}}
{{- if $prefix -}}
{{- printf "s3://%s/%s" .Values.valueStore.s3.bucket $prefix -}}
{{- else -}}
{{- printf "s3://%s" .Values.valueStore.s3.bucket -}}
{{- end -}}
{{- else -}}
{{- printf "file://%s" .Values.valueStore.pvc.mountPath -}}
{{- end -}}
{{- end -}}

{{/*
RBAC rules on namespaced resources, shared by the per-namespace Roles (namespaced mode) and the
ClusterRole (cluster-wide mode). Least privilege: exactly what the operator and kopf use.
*/}}
{{- define "kredun.rbac.namespacedRules" -}}
# Executions: kopf lists and watches them and patches its annotations and finalizer.
- apiGroups: ["kredun.dev"]
  resources: ["executions"]
  verbs: ["list", "watch", "patch"]
# Progress, results and failures go into the status subresource.
- apiGroups: ["kredun.dev"]
  resources: ["executions/status"]
  verbs: ["patch"]
# One Pod per job: created, watched, read back when adopting, deleted on cancel.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["create", "get", "list", "watch", "delete"]
# Failure messages and tracebacks come from job logs.
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# Events on Executions: job failures, retries, completion.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* RBAC rules on cluster-scoped resources. Call with the root context. */}}
{{- define "kredun.rbac.clusterRules" -}}
# kopf scans and watches CRDs to find the resources it serves.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
# kopf follows namespaces appearing and disappearing, also when serving named ones.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- if .Values.operator.watch.clusterWide }}
{{- if include "kredun.peering" . }}
# kopf peering between operator replicas (cluster-wide mode).
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end }}
{{- end -}}

{{/* kopf peering rule of namespaced mode. */}}
{{- define "kredun.rbac.namespacedPeeringRules" -}}
# kopf peering between operator replicas (namespaced mode).
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end -}}

{{/* Checks of value combinations the JSON schema cannot express. */}}
{{- define "kredun.validate" -}}
{{- if and (eq .Values.valueStore.type "s3") (not .Values.database.existingSecret) -}}
{{- fail "valueStore.type s3 needs database.existingSecret: with no claim to keep a SQLite file on, the operator needs PostgreSQL" -}}
{{- end -}}
{{- if and (eq .Values.valueStore.type "s3") (not .Values.valueStore.s3.bucket) -}}
{{- fail "valueStore.s3.bucket is required when valueStore.type is s3" -}}
{{- end -}}
{{- if and .Values.operator.watch.clusterWide .Values.operator.watch.namespaces -}}
{{- fail "set either operator.watch.clusterWide or operator.watch.namespaces, not both" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" -}}
{{- end -}}
{{- if and (include "kredun.peering" .) (not .Values.database.existingSecret) -}}
{{- fail "operator.replicas > 1 needs a shared database: set database.existingSecret" -}}
{{- end -}}
{{- if eq (int .Values.metrics.port) (int .Values.health.port) -}}
{{- fail "metrics.port and health.port must differ" -}}
{{- end -}}
{{- end -}}
