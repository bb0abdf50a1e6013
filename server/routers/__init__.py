"""One router per resource: health, server metadata, models, infer, classify, metrics."""
