"""Training and evaluation of the emotion models (``train_LANCET.py`` and ``predict.py`` are thin wrappers).

Settings and plan:
* :mod:`.config` — :class:`TrainConfig`: every default, its range and the command line generated from it;
* :mod:`.config_file` — a run's ``config.json`` read back (``--config``);
* :mod:`.plan` — settings checked before any work, and the run's units (model x fold x seed x condition);
* :mod:`.identity` — what a run's numbers were computed from (settings and the inputs' content);
* :mod:`.folds` — leave-one-session-out (speaker-independent) and the published random split.

Data:
* :mod:`.stores` — the run's feature store, its utterances, classes and folds;
* :mod:`.data` — segment tables over memory-mapped stores, batches, mixup, class weights;
* :mod:`.feature_norm` — global, per-utterance (CMVN) and per-segment normalisation;
* :mod:`.specaugment` — time and frequency masks;
* :mod:`.noise_pools` — stored noisy mixtures split by training and test recordings;
* :mod:`.online` — fresh noise every epoch (``--train-on online``: K copies, or paired clean and noisy views);
* :mod:`.views` — several views of the same segments in one batch, and the consistency term between them.

Fitting:
* :mod:`.fit` — the training loop of one model, with checkpoint/resume (:mod:`.resume`, :mod:`.checkpoint`);
* :mod:`.compiled` — the same loop without per-step overhead (``--compile``: device-resident data, compiled steps);
* :mod:`.unit` — one unit from its tables to its metrics file.

Evaluation and reports:
* :mod:`.metrics` — WA, UA, macro-F1, confusion; :mod:`.evaluate` — utterance pooling, the robustness matrix;
* :mod:`.records` — one result record per unit and condition; :mod:`.report` — tables, JSON/CSV and PNG plots;
* :mod:`.cross_corpus` — every fold's model on another corpus;
* :mod:`.history` — each unit's learning curve as it trains; :mod:`.curves` — the curves plot per model.

Using trained models (``predict.py``):
* :mod:`.predict` — labelling audio files, the tables and timelines it writes;
* :mod:`.predictor` — one ``best.pt`` rebuilt; :mod:`.ensemble` — fold models voting together;
* :mod:`.recording` — one recording streamed through the models in bounded memory (:mod:`.windows` cuts it);
* :mod:`.timeline` — labels over time (CSV, PNG); :mod:`.prediction_table` — ``--out`` (CSV, JSON);
* :mod:`.audio_checks` — silence and too-short warnings.

Running:
* :mod:`.grid` — a whole run (:func:`run_training`): plan, schedule, summarise;
* :mod:`.jobs` — several units at once on one device (``--jobs``);
* :mod:`.distributed` — torchrun ranks sharing units, and ``--ddp``.
"""
