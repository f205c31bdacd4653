{{/*
=================================================================================================
Library part: named templates another chart includes to add sigreload to its own pod.
Every input comes through a dict; none reads .Values, .Chart or .Release, so they work the same
from this chart and from a parent chart (which gets this chart as a dependency and passes its
`.Values.sigreload`). README.md "Adding the sidecar to your own chart" shows a whole example.

  sigreload.container   one container (a YAML list item): for the pod's `initContainers:` when
                        it is a native sidecar (values.sidecar.native, the default), for its
                        `containers:` otherwise. The caller puts it in the right list: a
                        native sidecar among `containers:` is refused by the API server, an
                        ordinary one among `initContainers:` never ends and the app never starts.
      values      required  this chart's values (image, sidecar, securityMode, runAsUser,
                            runAsGroup, logFormat, logLevel, dryRun, extraArgs, rules, metrics,
                            probes, resources); in a parent: .Values.sigreload
      native      optional  true or false: overrides values.sidecar.native (a parent chart with
                            pods of both kinds)
      watch       required  list of {volume, mountPath}: the pod's volumes holding the files the
                            rules watch (the app's ConfigMaps/Secrets), mounted read-only at
                            the same paths as in the app container. No subPath: Kubernetes
                            never updates subPath mounts. Every rule path must lie under one.
      volumeName  optional  the rule-file volume (default "sigreload-config")
      name        optional  the container name (default "sigreload")
  sigreload.volumes     the pod volume(s) the sidecar needs (YAML list items for `volumes:`)
      configMap   required  the ConfigMap holding sigreload.yaml (see sigreload.configMap)
      volumeName  optional  as above (default "sigreload-config")
  sigreload.configMap   a whole ConfigMap holding the rule file as key sigreload.yaml
      values      required  as above (settings, rules, metrics)
      name        required  its metadata.name
      labels      optional  a dict of labels
  sigreload.ruleFile    only the rule file's text (sigreload.yaml(5)), from values.settings, values.rules
                        and values.metrics
      values      required  as above

The pod itself must have `shareProcessNamespace: true`: sigreload finds the app's processes in
/proc. This is the pod spec's job, not the container's.
=================================================================================================
*/}}

{{/* The image tag used when values.image.tag is empty: this chart's appVersion (a test keeps
the two equal). A constant, because in a parent chart .Chart is the parent's. */}}
{{- define "sigreload.appVersion" -}}
0.1.0
{{- end }}

{{/* Where the rule file is mounted and the path sigreload is started with. */}}
{{- define "sigreload.configDir" -}}
/etc/sigreload
{{- end }}

{{- define "sigreload.ruleFile" -}}
{{- $v := required "sigreload.ruleFile: input \"values\" is required" .values -}}
{{- $seen := dict -}}
{{- range $v.rules -}}
{{- if hasKey $seen (toString .name) -}}
{{- fail (printf "rules: the rule name %q is used twice; each rule needs its own name" .name) -}}
{{- end -}}
{{- $_ := set $seen (toString .name) true -}}
{{- end -}}
# sigreload rule file (sigreload.yaml(5)), rendered by the sigreload chart from its values.
# sigreload watches this file and applies a valid new version without a restart.
{{- with $v.settings }}
{{ toYaml . }}
{{- end }}
metrics_listen: {{ if $v.metrics.enabled }}{{ printf ":%d" (int64 $v.metrics.port) | quote }}{{ else }}""{{ end }}
rules:
{{- range $v.rules }}
  - name: {{ .name | quote }}
    paths:
      {{- toYaml .paths | nindent 6 }}
    match:
      {{- toYaml .match | nindent 6 }}
    {{- with omit . "name" "paths" "match" }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
{{- end }}

{{- define "sigreload.configMap" -}}
{{- $name := required "sigreload.configMap: input \"name\" is required" .name -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $name }}
  {{- with .labels }}
  labels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
data:
  sigreload.yaml: |
    {{- include "sigreload.ruleFile" . | nindent 4 }}
{{- end }}

{{- define "sigreload.volumes" -}}
{{- $cm := required "sigreload.volumes: input \"configMap\" (the ConfigMap holding sigreload.yaml) is required" .configMap -}}
- name: {{ .volumeName | default "sigreload-config" }}
  configMap:
    name: {{ $cm }}
{{- end }}

{{/* The sidecar's securityContext for values.securityMode (README.md "Security modes"). */}}
{{- define "sigreload.securityContext" -}}
runAsNonRoot: true
runAsUser: {{ int64 .runAsUser }}
runAsGroup: {{ int64 .runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
  {{- if eq .securityMode "killCapability" }}
  # The image's binary has the file capability cap_kill+p and raises it itself; KILL must be
  # in the container's bounding set for that, which is what `add` does here.
  add:
    - KILL
  {{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Fails unless every rule path lies under one of the watch mounts: sigreload can only watch
what is mounted in its own container. */}}
{{- define "sigreload.checkPaths" -}}
{{- $watch := .watch -}}
{{- range .values.rules -}}
{{- $rule := .name -}}
{{- range .paths -}}
{{- $path := clean . -}}
{{- $covered := false -}}
{{- range $watch -}}
{{- $mp := clean .mountPath -}}
{{- if or (eq $path $mp) (hasPrefix (printf "%s/" (trimSuffix "/" $mp)) $path) -}}
{{- $covered = true -}}
{{- end -}}
{{- end -}}
{{- if not $covered -}}
{{- fail (printf "rule %q watches %s, which no volume mounted in the sigreload container contains: mount the app's ConfigMap there too (same mountPath, no subPath)" $rule $path) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}

{{- define "sigreload.container" -}}
{{- $v := required "sigreload.container: input \"values\" is required (in a parent chart: .Values.sigreload)" .values -}}
{{- $watch := required "sigreload.container: input \"watch\" is required: a list of {volume, mountPath} of the volumes the rules watch" .watch -}}
{{- range $watch -}}
{{- if not (and (kindIs "map" .) .volume .mountPath) -}}
{{- fail (printf "sigreload.container: each \"watch\" entry needs volume and mountPath, got %v" .) -}}
{{- end -}}
{{- if hasKey . "subPath" -}}
{{- fail (printf "sigreload.container: watch entry %s has subPath: Kubernetes never updates subPath mounts, mount the whole volume" .volume) -}}
{{- end -}}
{{- end -}}
{{- include "sigreload.checkPaths" (dict "values" $v "watch" $watch) -}}
{{- $tag := toString ($v.image.tag | default (include "sigreload.appVersion" .)) -}}
{{- $native := ternary .native $v.sidecar.native (hasKey . "native") -}}
- name: {{ .name | default "sigreload" }}
  image: {{ printf "%s:%s" $v.image.repository $tag | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if $native }}
  # A native sidecar (an init container that keeps running): started before the app, which
  # waits for its startup probe; stopped after the app.
  restartPolicy: Always
  {{- end }}
  args:
    - run
    - -c
    - {{ include "sigreload.configDir" . }}/sigreload.yaml
    - --log-format
    - {{ $v.logFormat }}
    - --log-level
    - {{ $v.logLevel }}
    {{- if $v.dryRun }}
    - --dry-run
    {{- end }}
    {{- range $v.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  {{- if $v.metrics.enabled }}
  ports:
    - name: sigreload
      containerPort: {{ int64 $v.metrics.port }}
      protocol: TCP
  {{- with $v.probes.liveness }}
  {{- if .enabled }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: sigreload
    {{- toYaml (omit . "enabled") | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- with $v.probes.readiness }}
  {{- if .enabled }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: sigreload
    {{- toYaml (omit . "enabled") | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- with $v.probes.startup }}
  {{- if .enabled }}
  startupProbe:
    httpGet:
      path: /readyz
      port: sigreload
    {{- toYaml (omit . "enabled") | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- end }}
  securityContext:
    {{- include "sigreload.securityContext" $v | nindent 4 }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  # A rule file sigreload rejects at start-up shows in `kubectl describe pod`.
  terminationMessagePolicy: FallbackToLogsOnError
  volumeMounts:
    - name: {{ .volumeName | default "sigreload-config" }}
      mountPath: {{ include "sigreload.configDir" . }}
      readOnly: true
    {{- range $watch }}
    - name: {{ .volume }}
      mountPath: {{ .mountPath }}
      readOnly: true
    {{- end }}
{{- end }}

{{/*
=================================================================================================
This chart's own resources (the example install).
=================================================================================================
*/}}

{{- define "sigreload.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sigreload.fullname" -}}
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

{{/* fullname with a suffix, still a valid DNS label (63 characters at most). */}}
{{- define "sigreload.fullnameWith" -}}
{{- $full := include "sigreload.fullname" .root -}}
{{- printf "%s-%s" ($full | trunc (int (sub 62 (len .suffix))) | trimSuffix "-") .suffix }}
{{- end }}

{{- define "sigreload.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sigreload.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sigreload.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sigreload.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
