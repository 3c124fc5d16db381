"""Batch scoring: a large collection scored for throughput, results saved by batch id.

The flow, whatever the model (the CLI's ``modelfactory score`` and the KFP pipeline
``pipelines/batch_scoring.py`` call the same steps, :mod:`modelfactory.steps.scoring`)::

    plan       the registered version to use, and the partitions of the work
    score      one partition: read it in chunks (:mod:`.sources`), check each chunk against
               the model, score the good rows, set the bad ones aside with their reason,
               and write both to a part (Parquet files, :mod:`.results`)
    publish    every part into the destination in one transaction, replacing what an
               earlier run of the same batch id wrote (:mod:`.results`)

What a model does with a chunk is its use case's business (:class:`.batch.BatchModel`:
the classifier in :mod:`modelfactory.classification.batch`, the store forecaster in
:mod:`modelfactory.forecasting.batch`); this package knows none of them.
"""
