"""Loaders for users' files and generators of realistic demo data, one module per use case."""
