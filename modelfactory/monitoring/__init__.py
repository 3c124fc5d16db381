"""Drift and performance monitoring over the prediction log, and the retraining it starts.

The closed loop: a window of logged predictions (``window``) is compared with the champion's
reference data (``reference``) by an Evidently report of input and prediction drift
(``drift``); ground truth joined to the log gives realized performance per version
(``performance``); a pure policy decides, from what was measured and the monitor's state, to
wait, alert or retrain, and says why (``policy``); a retraining run of the use case's compiled
pipeline starts (``retrain``); every check is an MLflow run (``recording``). A monitor's
settings are ``config``, the state it keeps between checks ``state``, and ``check`` holds the
one entry point, :func:`~modelfactory.monitoring.check.run_check` ``(config, state, use case)
-> (result, new state)``, which a DriftMonitor's CronJob and the CLI (``modelfactory drift
check|run``) call. The anomaly batch's daily drift is the anomaly use case's own
(``modelfactory.anomaly.monitoring``).

Measured choices (methods, thresholds, sampling): docs/adr/0008-drift-checks.md.
"""
