{{- /*
The chart's name, or nameOverride: the app.kubernetes.io/name label.
*/ -}}
{{- define "airollout.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /*
The prefix of every namespaced object's name: fullnameOverride, else the release name when it
already contains the chart's name (release "airollout" gives "airollout-controller"), else
"<release>-<name>". 52 characters leave room for the longest suffix ("-controller-metrics") within
the 63 a Service name allows.
*/ -}}
{{- define "airollout.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "airollout.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /*
The prefix of cluster-scoped names (ClusterRoles and their bindings): the release namespace and
the fullname, since Helm allows the same release name in two namespaces and both would otherwise
claim one ClusterRole.
*/ -}}
{{- define "airollout.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "airollout.fullname" .) | trunc 200 | trimSuffix "-" -}}
{{- end -}}

{{- define "airollout.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /*
What selects one release's Pods: name and instance (plus a component at each use), so two
releases' Services and Deployments never pick each other's Pods.
*/ -}}
{{- define "airollout.selectorLabels" -}}
app.kubernetes.io/name: {{ include "airollout.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- /*
The labels on every object: the selector labels, the chart and its version, who manages it.
*/ -}}
{{- define "airollout.labels" -}}
helm.sh/chart: {{ include "airollout.chart" . }}
{{ include "airollout.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: airollout
{{- end -}}

{{- /*
The labels of one component's objects and Pods: call with (list $ "controller").
*/ -}}
{{- define "airollout.componentLabels" -}}
{{ include "airollout.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "airollout.componentSelector" -}}
{{ include "airollout.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- /*
The gateway's in-cluster base URL (its Service listens on port 80).
*/ -}}
{{- define "airollout.gatewayUrl" -}}
http://{{ include "airollout.fullname" . }}-gateway.{{ .Release.Namespace }}.svc
{{- end -}}

{{- /*
A PodDisruptionBudget for one Deployment: call with (list $ "controller" replicas pdbValues).
Rendered only with more than one replica: with one, any budget either blocks node drains for
good (minAvailable 1) or allows what no budget allows (maxUnavailable 1).
*/ -}}
{{- define "airollout.pdb" -}}
{{- $ := index . 0 -}}
{{- $component := index . 1 -}}
{{- $replicas := int (index . 2) -}}
{{- $pdb := index . 3 -}}
{{- if and $pdb.enabled (gt $replicas 1) }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "airollout.fullname" $ }}-{{ $component }}
  namespace: {{ $.Release.Namespace }}
  labels: {{- include "airollout.componentLabels" (list $ $component) | nindent 4 }}
spec:
  maxUnavailable: {{ $pdb.maxUnavailable }}
  selector:
    matchLabels: {{- include "airollout.componentSelector" (list $ $component) | nindent 6 }}
{{- end }}
{{- end -}}

{{- /*
Where and how every Pod of the release is scheduled and pulled (podAnnotations go in the
templates' metadata): the same values for the controller, the gateway and the dashboard.
*/ -}}
{{- define "airollout.podScheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
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
