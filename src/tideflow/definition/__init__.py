"""Workflow definitions: the model, loading from YAML/JSON, validation and the Python builder."""
