"""Per-model pipeline: backends, the dynamic batcher, served models and their manager."""
