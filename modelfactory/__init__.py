"""modelfactory: pipelines, registry, serving, rollouts and drift for three ML use cases."""

__version__ = "0.1.0"
