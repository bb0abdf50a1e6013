"""One module per ``python -m models`` command; each exposes ``register(subparsers)``."""
