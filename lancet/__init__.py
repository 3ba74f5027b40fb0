"""LANCET: reproducible, noise-robust speech emotion recognition on IEMOCAP.

Shared code for the scripts under ``datasets/``, ``feature_extraction/`` and ``train_LANCET.py``:
the scripts stay thin and call into these modules.
"""

import os as _os

__version__ = "0.1.0"

# Torch's OpenMP threads sleep instead of spinning while they wait: a machine shared with other jobs
# then slows down gracefully (lancet.workers.default_torch_threads says why). Read once, when torch
# loads, so it is set here, before any lancet module imports torch; an explicit setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
