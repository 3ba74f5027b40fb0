"""The ground floor every step stands on, importing nothing else of ``lancet``.

Record types and names shared by all steps (:mod:`~lancet.core.manifest`, :mod:`~lancet.core.classes`,
:mod:`~lancet.core.conditions`), one-line errors (:mod:`~lancet.core.errors`), atomic writes and output
locks (:mod:`~lancet.core.atomic`, :mod:`~lancet.core.locking`, :mod:`~lancet.core.paths`), audio I/O
(:mod:`~lancet.core.audio`), checks of numeric settings (:mod:`~lancet.core.checks`), the worker pool
(:mod:`~lancet.core.workers`) and the device and precision choice (:mod:`~lancet.core.device`).
"""
