{{/*
The serving pod of one model: (dict "context" $ "model" $model "mv" $mv). The static
Deployment (operator.enabled=false) and each ModelDeployment's spec.template use it, so a
serving pod has the same secure defaults whoever creates it. "account" names the MLflow account
whose credentials it carries (serving by default; the operator's templates of drift checks and
rollout replays, which start from this pod, carry theirs).
*/}}
{{- define "modelfactory.serving.podTemplate" -}}
{{- $ := .context }}
{{- $model := .model }}
{{- $mv := .mv }}
{{- $s := $.Values.serving }}
{{- $account := .account | default "serving" }}
{{- $auth := $.Values.mlflow.auth.enabled }}
metadata:
  labels:
    {{- include "modelfactory.labels" (dict "context" $ "component" "serving" "model" $model.name) | nindent 4 }}
  {{- with $mv.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "modelfactory.serviceAccountName" (dict "context" $ "part" "serving") }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- with $.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $.Values.podSecurityContext | nindent 4 }}
  # The drain below, then the server's own shutdown.
  terminationGracePeriodSeconds: {{ add (int $s.drainSeconds) 30 }}
  containers:
    - name: serving
      image: {{ include "modelfactory.image" $.Values.images.serving | quote }}
      imagePullPolicy: {{ $.Values.images.serving.pullPolicy }}
      securityContext:
        {{- toYaml $.Values.containerSecurityContext | nindent 8 }}
      command:
        {{- include "modelfactory.secrets.command" (dict "variable" "MODELFACTORY_PREDICTION_STORE_URL" "name" "serving") | nindent 8 }}
        # The image's own program: the service of this model's use case (the forecast API
        # for the store-sales model set, the classifier otherwise) on
        # MODELFACTORY_HTTP_HOST:MODELFACTORY_HTTP_PORT.
        - python3
        - -m
        - modelfactory_serving
      env:
        # The same names modelfactory.config.Settings reads everywhere.
        - name: MODELFACTORY_MODEL_NAME
          value: {{ $model.name | quote }}
        - name: MODELFACTORY_MODEL_ALIAS
          value: {{ $mv.alias | quote }}
        - name: MLFLOW_TRACKING_URI
          value: {{ include "modelfactory.mlflow.url" $ | quote }}
        {{- if $auth }}
        {{- include "modelfactory.mlflow.credentialsEnv" (dict "context" $ "account" $account) | nindent 8 }}
        {{- end }}
        - name: MODELFACTORY_HTTP_HOST
          value: "0.0.0.0"
        - name: MODELFACTORY_HTTP_PORT
          value: "3000"
        - name: MODELFACTORY_GRPC_PORT
          value: "8001"
        - name: MODELFACTORY_METRICS_PORT
          value: "8002"
        - name: MODELFACTORY_WORKERS
          value: {{ $mv.workers | quote }}
        {{- include "modelfactory.db.env" (dict "context" $ "database" "predictions") | nindent 8 }}
        - name: MODELFACTORY_HOME
          value: /home/app/modelfactory
        - name: MODELFACTORY_PREDICTION_SPOOL_DIR
          value: /var/lib/modelfactory/prediction-spool
        - name: MODELFACTORY_PREDICTION_SPOOL_MAX_MB
          value: {{ $s.predictionSpool.maxMB | quote }}
        {{- if $s.predictionSpool.fsync }}
        - name: MODELFACTORY_PREDICTION_SPOOL_FSYNC
          value: "true"
        {{- end }}
        - name: BENTOML_HOME
          value: /home/app/bentoml
        {{- with (concat ($s.extraEnv | default list) ($model.extraEnv | default list)) }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: 3000
          protocol: TCP
        - name: grpc
          containerPort: 8001
          protocol: TCP
        - name: metrics
          containerPort: 8002
          protocol: TCP
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: {{ $s.probes.startup.periodSeconds }}
        failureThreshold: {{ $s.probes.startup.failureThreshold }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: {{ $s.probes.liveness.periodSeconds }}
        timeoutSeconds: {{ $s.probes.liveness.timeoutSeconds }}
        failureThreshold: {{ $s.probes.liveness.failureThreshold }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: {{ $s.probes.readiness.periodSeconds }}
        timeoutSeconds: {{ $s.probes.readiness.timeoutSeconds }}
        failureThreshold: {{ $s.probes.readiness.failureThreshold }}
      {{- if $s.drainSeconds }}
      # Answer on while the endpoints controllers and every node's kube-proxy take this pod out
      # of the Service: a server that stopped listening at once refuses the connections still
      # routed to it (and resets the kept-alive ones), which the clients see as failed requests.
      lifecycle:
        preStop:
          exec:
            command: ["sleep", {{ $s.drainSeconds | quote }}]
      {{- end }}
      resources:
        {{- toYaml $mv.resources | nindent 8 }}
      volumeMounts:
        {{- include "modelfactory.scratchMounts" $ | nindent 8 }}
        - name: prediction-spool
          mountPath: /var/lib/modelfactory/prediction-spool
        {{- include "modelfactory.db.passwordsMount" $ | nindent 8 }}
        {{- if $auth }}
        {{- include "modelfactory.mlflow.credentialsMount" $ | nindent 8 }}
        {{- end }}
  {{- with $mv.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $mv.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $mv.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $mv.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumes:
    {{- include "modelfactory.scratchVolumes" $ | nindent 4 }}
    - name: prediction-spool
      {{- with $s.predictionSpool.existingClaim }}
      persistentVolumeClaim:
        claimName: {{ . }}
      {{- else }}
      emptyDir:
        # Every worker's spool at its bound, and room to spare (the operator sizes it again
        # for a ModelDeployment's own workers).
        sizeLimit: {{ add (mul (int $mv.workers) (int $s.predictionSpool.maxMB)) 64 }}Mi
      {{- end }}
    {{- include "modelfactory.db.passwordsVolume" (dict "context" $ "databases" (list "predictions")) | nindent 4 }}
    {{- if $auth }}
    {{- include "modelfactory.mlflow.credentialsVolume" (dict "context" $ "account" $account) | nindent 4 }}
    {{- end }}
{{- end -}}
