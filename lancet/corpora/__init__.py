"""Open corpora beside IEMOCAP: EmoDB, RAVDESS, CREMA-D and any labelled folder, in one manifest format.

Every reader returns a :class:`lancet.corpus.CorpusScan` of :class:`lancet.corpus.Utterance` records,
written with :func:`lancet.corpus.write_manifest` (the same columns as IEMOCAP's). The ``session`` column
holds the speaker group (:mod:`lancet.corpora.folds`), so every later step runs unchanged.
"""

from lancet.corpora.classes import CLASS_CHOICES, CLASS_ORDER, class_map, ordered_classes
from lancet.corpora.cremad import scan_cremad
from lancet.corpora.emodb import scan_emodb
from lancet.corpora.folder import scan_folder
from lancet.corpora.folds import DEFAULT_FOLD_SEED, DEFAULT_FOLDS, assign_folds, deal_speakers, describe_folds
from lancet.corpora.ravdess import scan_ravdess

__all__ = ["CLASS_CHOICES", "CLASS_ORDER", "DEFAULT_FOLDS", "DEFAULT_FOLD_SEED", "assign_folds", "class_map",
           "deal_speakers", "describe_folds", "ordered_classes", "scan_cremad", "scan_emodb", "scan_folder",
           "scan_ravdess"]
