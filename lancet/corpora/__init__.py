"""Corpus readers: IEMOCAP, EmoDB, RAVDESS, CREMA-D and any labelled folder, in one manifest format.

Every reader returns a :class:`lancet.core.manifest.CorpusScan` of :class:`lancet.core.manifest.Utterance`
records (written with :func:`lancet.core.manifest.write_manifest`), and :mod:`lancet.corpora.registry`
lists them as plain data. For corpora without sessions the ``session`` column holds the speaker group
(:mod:`lancet.corpora.speaker_groups`), so every later step runs unchanged. The trees later steps write
are keyed by :mod:`lancet.corpora.layout`; :mod:`lancet.corpora.standard_names` gives every version of
every utterance its standard name.
"""
