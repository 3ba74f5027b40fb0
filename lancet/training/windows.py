"""Fixed-length windows cut from a stream of audio blocks, exactly as from the whole recording.

:func:`lancet.features.segment.segment_starts` cuts an utterance held in memory: windows at 0, hop,
2 hop, ... that fit, one more aligned to the end when more than ``tail_min`` is left over, and a single
zero-padded window for audio shorter than one window. :class:`Windower` gives the same windows from
blocks pushed one after another, keeping only the samples a later window can still need (at most one
window plus one block), so a recording of any length is cut in bounded memory.

Example:
    >>> import numpy as np
    >>> w = Windower(length=4, hop=2, tail_min=0)
    >>> [x.start for x in w.push(np.arange(5, dtype=np.float32))], [x.start for x in w.push(np.ones(2, np.float32))]
    ([0], [2])
    >>> [(x.start, x.n_real) for x in w.finish()]
    [(3, 4)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lancet.features.params import SegmentParams


@dataclass(frozen=True)
class Window:
    """One window: where it starts in the recording (samples), its audio (zero-padded to the window
    length) and how many of its samples are real."""

    start: int
    audio: np.ndarray
    n_real: int


class Windower:
    """Windows of ``length`` samples every ``hop`` from pushed blocks (see the module docstring)."""

    def __init__(self, length: int, hop: int, tail_min: int, short: str = "pad") -> None:
        if length <= 0 or hop <= 0:
            raise ValueError(f"window length and hop must be positive, got {length} and {hop}")
        self.length, self.hop, self.tail_min, self.short = int(length), int(hop), int(tail_min), short
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0          # recording index of _buf[0]
        self._next = 0               # start of the next regular window
        self._last: int | None = None
        self.total = 0               # samples pushed so far
        self.max_buffered = 0        # the most samples ever held (the memory bound, for tests)

    @classmethod
    def for_segments(cls, seg: SegmentParams) -> "Windower":
        """The windows of the training segmentation (``segment_audio``'s)."""
        return cls(seg.segment_samples, seg.hop_samples, seg.tail_min_samples, seg.short)

    def push(self, block: np.ndarray) -> list[Window]:
        """Add the next samples; returns the regular windows they complete."""
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self._buf = np.concatenate([self._buf, block]) if len(self._buf) else block.copy()
        self.total += len(block)
        self.max_buffered = max(self.max_buffered, len(self._buf))
        out = []
        while self._next + self.length <= self.total:
            out.append(self._window(self._next))
            self._last = self._next
            self._next += self.hop
        # keep what the next regular window or an end-aligned last one can still need
        keep_from = max(self._buf_start, min(self._next, self.total - self.length))
        self._buf = self._buf[keep_from - self._buf_start:]
        self._buf_start = keep_from
        return out

    def finish(self) -> list[Window]:
        """The window the end of the recording adds: end-aligned, or the padded only one of a short recording."""
        n = self.total
        if n <= 0:
            return []
        if n < self.length:
            if self.short != "pad":
                return []
            audio = np.zeros(self.length, np.float32)
            audio[:n] = self._buf[:n]
            return [Window(0, audio, n)]
        tail = n - (self._last + self.length)
        if tail > 0 and tail > self.tail_min:
            return [self._window(n - self.length)]
        return []

    def _window(self, start: int) -> Window:
        at = start - self._buf_start
        return Window(start, self._buf[at:at + self.length].copy(), self.length)
