"""One module per ``python -m verifier_client`` command; each exposes ``register(subparsers)``."""
