"""KFP pipelines, one per use case; ``python -m pipelines.compile`` writes the YAML beside each."""
