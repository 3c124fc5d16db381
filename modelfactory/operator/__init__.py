"""The operator (kopf): ModelDeployments served and rolled out, DriftMonitors scheduled.

- ``crds``: the custom resources' names (group, version, kinds, plurals, annotation, finalizer);
- ``handlers``: the kopf handlers, thin adapters over the rollout controller
  (:mod:`modelfactory.rollout.controller`) and the renderers below;
- ``resources`` and ``monitors``: the objects a ModelDeployment and a DriftMonitor own, rendered
  from their specs (pure);
- ``conditions``: status conditions as ``kubectl wait`` reads them;
- ``kube``: the Kubernetes API calls (server-side apply, serving endpoints);
- ``metrics``: the operator's own Prometheus metrics;
- ``monitor_job`` and ``cleanup``: the programs a DriftMonitor's CronJob and the chart's
  pre-delete hook run; ``__main__``: ``python -m modelfactory.operator``.
"""
