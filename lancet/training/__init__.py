"""Training and evaluation of the emotion models (``train_LANCET.py`` and ``predict.py`` are thin wrappers).

* :mod:`.config` — :class:`TrainConfig`, every default, and the command line generated from it;
* :mod:`.splits` — LOSO (speaker-independent) and the published random split;
* :mod:`.data` — segment tables over memory-mapped stores, batches, mixup, class weights;
* :mod:`.metrics` — WA, UA, macro-F1, confusion;
* :mod:`.loop` — the training loop with checkpoint/resume;
* :mod:`.step` — the same loop without per-step overhead (``--compile``: device-resident data, compiled steps);
* :mod:`.evaluate` — utterance pooling and the robustness matrix;
* :mod:`.report` — tables, JSON/CSV and PNG plots;
* :mod:`.runner` — a whole run (:func:`run_training`);
* :mod:`.predict` — labelling wav files with a checkpoint.
"""

from .config import TrainConfig
from .runner import run_training

__all__ = ["TrainConfig", "run_training"]
