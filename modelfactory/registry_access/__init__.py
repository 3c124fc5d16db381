"""Who may do what in the model registry on a cluster: MLflow's basic-auth app, one account per
part of the platform, each with the least grants MLflow's permission model can express
(docs/adr/0016-registry-access-through-mlflow-basic-auth.md).

- :mod:`.accounts`: the accounts and their grants, as data;
- :mod:`.reconcile`: makes MLflow's auth database hold exactly those accounts, passwords and
  grants (the chart runs it before the server starts, and before every upgrade);
- :mod:`.server`: the auth app's configuration file and ``mlflow server --app-name basic-auth``;
- ``python -m modelfactory.registry_access reconcile|serve``: both, as the chart runs them.

The embedded server of one machine stays open on 127.0.0.1.
"""
