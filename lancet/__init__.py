"""LANCET: reproducible, noise-robust speech emotion recognition on IEMOCAP.

Shared code for the scripts under ``datasets/``, ``feature_extraction/`` and ``train_LANCET.py``:
the scripts stay thin and call into these modules.
"""

__version__ = "0.1.0"
