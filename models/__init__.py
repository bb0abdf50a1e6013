"""Ground floor of the testbed: architectures, datasets, transforms, checkpoints, repository.

Imported by both `server` (the pirate's service) and `verifier_client` (the owner's side);
imports neither.
"""

__version__ = "0.1.0"
