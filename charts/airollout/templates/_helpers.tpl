{{- define "airollout.name" -}}airollout{{- end -}}
{{- define "airollout.labels" -}}
app.kubernetes.io/name: airollout
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- /*
The egress policy's flags, the same for the controller and the gateway (README "Security").
*/ -}}
{{- define "airollout.egressArgs" -}}
{{- with .Values.egress }}
- --egress-default={{ .defaultAction }}
{{- if .denyLoopback }}
- --egress-deny-loopback
{{- end }}
{{- with .allowHosts }}
- --egress-allow-hosts={{ join "," . }}
{{- end }}
{{- with .allowCidrs }}
- --egress-allow-cidrs={{ join "," . }}
{{- end }}
{{- with .allowNamespaces }}
- --egress-allow-namespaces={{ join "," . }}
{{- end }}
{{- end }}
{{- end -}}
