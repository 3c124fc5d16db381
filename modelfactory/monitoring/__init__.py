"""Drift and performance monitoring over the prediction log (reserved: the drift issue fills it)."""
