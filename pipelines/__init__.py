"""KFP pipelines, one per use case (``<use case>.py``), each compiled to the YAML beside it.

``python -m modelfactory_pipelines.compile`` (``make pipelines``) writes the YAML; it is
what a user uploads to the KFP UI, and what ``modelfactory run`` runs on one machine.
"""

# In the cluster the chart's MLflow Service answers here (release "modelfactory", namespace
# "modelfactory").
CLUSTER_MLFLOW_URI = "http://modelfactory-mlflow.modelfactory.svc.cluster.local:5000"
