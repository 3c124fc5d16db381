"""The pipeline steps every use case shares, as plain functions over files: ``data`` (ingest,
validate) and ``scoring`` (batch scoring's resolve, plan, score and publish).

They sit above the use cases (they look a use case up by name or by registered model); each use
case's own steps are ``modelfactory.<use case>.steps``. The KFP components under
``components/`` and the CLI call them and nothing else.
"""
