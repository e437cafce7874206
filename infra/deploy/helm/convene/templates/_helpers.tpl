{{/* The release's full name, cut to 40 characters so suffixes like -api-metrics stay under 63. */}}
{{- define "convene.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "convene.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "api"). */}}
{{- define "convene.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "convene.componentLabels" -}}
{{ include "convene.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "convene.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "convene.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "convene.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The control plane's HTTP URL inside the cluster (CONVENE_CONTROL_URL of the media nodes). */}}
{{- define "convene.controlUrl" -}}
{{- printf "http://%s-api.%s.svc:%v" (include "convene.fullname" .) .Release.Namespace .Values.api.service.port -}}
{{- end -}}

{{- define "convene.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "secrets: the Secret holding %s needs a name" .name) .ref.name }}
      key: {{ required (printf "secrets: the key of %s needs a name" .name) .ref.key }}
{{- end -}}

{{/* What every role is told: where people reach it, and how it logs. */}}
{{- define "convene.commonEnv" -}}
- name: CONVENE_PUBLIC_URL
  value: {{ required "publicUrl is required" .Values.publicUrl | quote }}
- name: CONVENE_MEET_URL
  value: {{ required "meetUrl is required" .Values.meetUrl | quote }}
- name: CONVENE_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: CONVENE_DATA_DIR
  value: /var/lib/convene
- name: CONVENE_SITE_DIR
  value: /opt/convene/site
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The control plane's database and keys: the api pods and the migration job. */}}
{{- define "convene.databaseEnv" -}}
{{ include "convene.secretEnv" (dict "name" "CONVENE_DATABASE_URL" "ref" .Values.secrets.databaseUrl) }}
{{ include "convene.secretEnv" (dict "name" "CONVENE_SECRET_KEY" "ref" .Values.secrets.secretKey) }}
{{- end -}}

{{- define "convene.podSecurity" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
