{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "campus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, plus the chart name when the release name doesn't contain it. */}}
{{- define "campus.fullname" -}}
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

{{- define "campus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the chart. */}}
{{- define "campus.labels" -}}
helm.sh/chart: {{ include "campus.chart" . }}
app.kubernetes.io/name: {{ include "campus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: campus
{{- end }}

{{/* Selector labels of one component: include "campus.selectorLabels" (list $ "kafka") */}}
{{- define "campus.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "campus.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* All labels of one component: include "campus.componentLabels" (list $ "kafka") */}}
{{- define "campus.componentLabels" -}}
{{ include "campus.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "campus.operator.fullname" -}}
{{- printf "%s-operator" (include "campus.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "campus.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "campus.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The namespaces the operator watches, as a JSON list: `operator.watchNamespaces`, else the former
`operator.watchNamespace`, else the release namespace alone; ["*"] for every namespace.
*/}}
{{- define "campus.operator.watchNamespaces" -}}
{{- $op := .Values.operator }}
{{- $list := list }}
{{- if $op.watchNamespaces }}{{ $list = $op.watchNamespaces }}
{{- else if $op.watchNamespace }}{{ $list = list $op.watchNamespace }}
{{- else }}{{ $list = list .Release.Namespace }}{{ end }}
{{- $list = uniq $list }}
{{- if and (has "*" $list) (gt (len $list) 1) }}
{{- fail (printf "operator.watchNamespaces: \"*\" (every namespace) cannot be combined with namespaces: %s" (join "," $list)) }}
{{- end }}
{{- toJson $list }}
{{- end }}

{{/*
A Campus image reference from {repository, tag}: the registry (`global.imageRegistry`, else
`image.registry`; none when both are empty) before the repository, the tag defaulting to the appVersion.
*/}}
{{- define "campus.image" -}}
{{- $ := index . 0 }}{{ $img := index . 1 -}}
{{- $registry := include "campus.imageRegistry" $ }}
{{- $repo := $img.repository }}
{{- if $registry }}{{ $repo = printf "%s/%s" $registry $repo }}{{ end }}
{{- printf "%s:%s" $repo (default $.Chart.AppVersion $img.tag) }}
{{- end }}

{{/*
The registry of the Campus images: `global.imageRegistry`, else `image.registry`, without a trailing
slash ("" when both are empty). The operator puts it before the default images of the platforms that
name none (IMAGE_REGISTRY).
*/}}
{{- define "campus.imageRegistry" -}}
{{- ((.Values.global | default dict).imageRegistry | default (.Values.image | default dict).registry) | default "" | trimSuffix "/" }}
{{- end }}

{{/* Name of one infrastructure component: include "campus.infra.name" (list $ "kafka") */}}
{{- define "campus.infra.name" -}}
{{- printf "%s-%s" (include "campus.fullname" (index . 0)) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The dev infrastructure's credentials: `infrastructure.auth.existingSecret`, else the chart's Secret. */}}
{{- define "campus.infra.secretName" -}}
{{- .Values.infrastructure.auth.existingSecret | default (printf "%s-infra-credentials" (include "campus.fullname" .) | trunc 63 | trimSuffix "-") }}
{{- end }}

{{/* Volumes of an infrastructure StatefulSet: emptyDir when persistence is off. */}}
{{- define "campus.infra.dataVolume" -}}
{{- $ := index . 0 -}}
{{- if not $.Values.infrastructure.persistence.enabled }}
volumes:
  - name: data
    emptyDir: {}
{{- end }}
{{- end }}

{{- define "campus.infra.volumeClaimTemplates" -}}
{{- $ := index . 0 -}}{{- $size := index . 1 -}}
{{- if $.Values.infrastructure.persistence.enabled }}
volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: ["ReadWriteOnce"]
      {{- with $.Values.infrastructure.persistence.storageClass }}
      storageClassName: {{ . | quote }}
      {{- end }}
      resources:
        requests:
          storage: {{ $size }}
{{- end }}
{{- end }}

{{/* Name of the Service that exposes one API: include "campus.expose.name" (list $ "content") */}}
{{- define "campus.expose.name" -}}
{{- printf "%s-expose-%s-api" (include "campus.fullname" (index . 0)) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of the pods the operator runs for one API of the platform `platform.name`. */}}
{{- define "campus.platform.apiSelector" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/instance: {{ $.Values.platform.name }}
app.kubernetes.io/component: {{ index . 1 }}-api
campus.dev/platform: {{ $.Values.platform.name }}
{{- end }}

{{/* "true" when the dev infrastructure runs Kibana: asked for, and an Elasticsearch (not OpenSearch) to read. */}}
{{- define "campus.infra.kibana" -}}
{{- $i := .Values.infrastructure }}
{{- if and $i.enabled $i.kibana.enabled (eq $i.elasticsearch.distribution "elasticsearch") }}true{{ end }}
{{- end }}
