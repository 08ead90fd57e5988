{{- define "airollout.name" -}}airollout{{- end -}}
{{- define "airollout.labels" -}}
app.kubernetes.io/name: airollout
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
