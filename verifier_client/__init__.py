"""The owner's side: fingerprint generation, calibration, remote verification, reports, load tests.

Stands on ``models``; never imports ``server``.
"""

__version__ = "0.1.0"
