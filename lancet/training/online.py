"""On-the-fly noise augmentation for training (``--train-on online``).

Every epoch, every training utterance is kept clean with probability ``clean_prob`` and otherwise mixed
afresh with a noise drawn from the noise types asked for, at an SNR drawn uniformly from
``[snr_low, snr_high]`` dB, and reverberated first with probability ``reverb_prob``; its segments'
features are then computed with the project's torch feature path
(:class:`lancet.features.TorchFeatures`, on the training device). The result is an in-memory
:class:`~lancet.training.data.SegmentTable` that the training loop uses for that epoch; validation and
test stay on the stored conditions, so the robustness matrix means the same as for the other modes.

One definition of everything, shared with ``datasets/augment_IEMOCAP.py``:

* SNR and mixing: :func:`lancet.noise.mixing.mix_at_snr` (speech power / noise power over the whole
  utterance, peak-limited without clipping); noise cut and looped with :func:`~lancet.noise.mixing.noise_segment`;
* sources: :func:`lancet.noise.sources.resolve_sources` (``--noise-dir``, the shared real recordings,
  generated stand-ins; generated white) — restricted to the *training pool* of recordings
  (:mod:`lancet.noise.pools`), so no test recording is heard;
* babble: :func:`lancet.noise.babble.babble_for` over the fold's *training speakers* only
  (:func:`~lancet.noise.babble.fold_talkers`), asserted for every mixture;
* reverberation: :func:`lancet.noise.reverb.reverberate` with simulated rooms of a different seed
  (other placements than the stored test rooms) or the training pool of ``--rir-dir``;
* segmenting and features: :func:`lancet.features.segment_audio`, :func:`~lancet.features.valid_frames`
  and the store's own parameters (``params.json``), so online features equal stored ones for the same audio;
  or, through another featuriser (:mod:`lancet.training.online_features`), an ssl store's per-layer means
  of each whole mixture, or the mixture's audio itself for ``--finetune``.

Each epoch's draws come from a generator seeded by (seed, epoch): an interrupted run that resumes at
epoch k sees the same noisy data it would have seen.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from lancet.core.audio import SAMPLE_RATE, load_audio
from lancet.core.conditions import CLEAN
from lancet.core.errors import LancetError
from lancet.core.manifest import audio_paths
from lancet.noise import babble as babble_mod
from lancet.noise import reverb as reverb_mod
from lancet.noise.mixing import CROSSFADE_S, SilentSignalError, is_silent, mix_at_snr
from lancet.noise.pools import TRAIN, NoiseSplit, split_recordings
from lancet.noise.registry import NOISE_TYPES
from lancet.noise.sources import SHARED_NOISE_DIR, NoiseSource, draw_noise, resolve_sources

from .config import TrainConfig, default_of
from .data import SegmentTable
from .online_features import SegmentFeatures

ONLINE_ROOM_SEED = 1_000_003   # simulated rooms for training: other source/microphone placements than the stored ones
ONLINE_CONDITION = "online"
# Appended to errors about the clean audio: online training is the default, so say how to do without audio.
AUDIO_HINT = "--train-on clean trains on the stored features alone"


@dataclass
class OnlineSettings:
    """What an online epoch draws: the ``--online-*`` flags of train_LANCET.py (defaults: TrainConfig's)."""

    snr_low: float = default_of("online_snr_low")
    snr_high: float = default_of("online_snr_high")
    noise_types: Sequence[str] = field(default_factory=lambda: default_of("online_noise_types"))
    reverb_prob: float = default_of("online_reverb_prob")
    clean_prob: float = default_of("online_clean_prob")
    noise_dir: str | None = default_of("noise_dir")
    shared_noise_dir: str | None = str(SHARED_NOISE_DIR)
    rir_dir: str | None = default_of("rir_dir")
    babble_speakers: int = babble_mod.DEFAULT_TALKERS
    split_seed: int = default_of("noise_split_seed")
    test_fraction: float = default_of("noise_test_fraction")
    crossfade_s: float = CROSSFADE_S
    copies: int = default_of("online_copies")
    paired: bool = default_of("online_paired")

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> "OnlineSettings":
        return cls(snr_low=cfg.online_snr_low, snr_high=cfg.online_snr_high, noise_types=tuple(cfg.online_noise_types),
                   reverb_prob=cfg.online_reverb_prob, clean_prob=cfg.online_clean_prob, noise_dir=cfg.noise_dir,
                   rir_dir=cfg.rir_dir, split_seed=cfg.noise_split_seed, test_fraction=cfg.noise_test_fraction,
                   copies=cfg.online_copies, paired=cfg.paired_views)

    def check(self) -> None:
        if not self.snr_low <= self.snr_high:
            raise LancetError(f"--online-snr: the low end {self.snr_low} is above the high end {self.snr_high}")
        if not 0.0 <= self.reverb_prob <= 1.0:
            raise LancetError(f"--online-reverb-prob must be in [0, 1], got {self.reverb_prob}")
        if not 0.0 <= self.clean_prob < 1.0:
            raise LancetError(f"--online-clean-prob must be in [0, 1), got {self.clean_prob}")
        if self.copies < 1:
            raise LancetError(f"--online-copies must be at least 1, got {self.copies}")
        if self.paired and self.clean_prob > 0:
            raise LancetError("--online-clean-prob: with --online-paired every segment is seen clean already")
        unknown = [n for n in self.noise_types if n not in NOISE_TYPES]
        if unknown or not self.noise_types:
            raise LancetError(f"--online-noise-types: choose from {', '.join(NOISE_TYPES)} (got {', '.join(unknown) or 'none'})")


@dataclass
class TrainUtterance:
    id: str
    path: str
    speaker: str
    label: int


@dataclass
class Mixture:
    """One online mixture: the audio, its speech component and what made it."""

    audio: np.ndarray
    speech: np.ndarray          # the speech component inside ``audio`` (reverberant if reverberated)
    snr_db: float
    noise_type: str
    noise_file: str
    talkers: list[str] = field(default_factory=list)   # babble: speakers whose voices are in the noise
    room: str = ""


def clean_audio_paths(manifest: str | os.PathLike) -> dict[str, str]:
    """``id -> wav path`` of the clean utterances of a combined manifest (PIPELINE.md step 3) or corpus manifest."""
    out = {utt: p for (condition, utt), p in audio_paths(
        manifest, f"--train-on online, the default, needs the clean audio: pass --audio-manifest, or {AUDIO_HINT}"
    ).items() if condition == CLEAN}
    if not out:
        raise LancetError(f"{manifest}: no clean rows")
    return out


class _Cache:
    """Audio by path, bounded in bytes (clean training speech is reused every epoch)."""

    def __init__(self, budget: int) -> None:
        self.budget, self.used, self.items = budget, 0, OrderedDict()

    def get(self, key: str) -> np.ndarray:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = load_audio(key, SAMPLE_RATE)
        self.items[key] = value
        self.used += value.nbytes
        while self.used > self.budget and len(self.items) > 1:
            self.used -= self.items.popitem(last=False)[1].nbytes
        return value


def speakers_index(utts: Sequence[TrainUtterance]) -> dict[str, list[int]]:
    """Speaker -> indices of their utterances in ``utts`` (the talkers online babble is made of)."""
    by_speaker: dict[str, list[int]] = {}
    for i, u in enumerate(utts):
        by_speaker.setdefault(u.speaker, []).append(i)
    return by_speaker


def training_sources(settings: OnlineSettings, n_speakers: int,
                     log: Callable[[str], None]) -> tuple[dict[str, NoiseSource], dict[str, NoiseSplit]]:
    """Every noise type's source for training, recordings cut down to the training pool: (sources, the
    splits of the types that read recordings). ``n_speakers``: the fold's training speakers, for corpus babble."""
    sources = resolve_sources(settings.noise_types, settings.noise_dir, settings.shared_noise_dir, log=log)
    splits = {}
    for nt, src in sources.items():
        if src.kind in ("files", "talkers"):
            sp = split_recordings(src.files, settings.split_seed, settings.test_fraction)
            splits[nt] = sp
            src.files = [f for f in src.files if sp.pool(f) == TRAIN]
            log(f"online {nt}: {len(src.files)} training-pool files ({sp.describe()}); test-pool files never used")
            if not src.files:
                raise LancetError(f"online {nt}: no recording left in the training pool")
        else:
            log(f"online {nt}: {src.description}"
                + (" — fold training speakers only" if src.kind == "corpus" else ""))
    for nt in (nt for nt, src in sources.items() if src.kind == "corpus"):
        if n_speakers < 2:
            raise LancetError(f"online {nt} from the corpus needs at least two training speakers")
    return sources, splits


def training_rooms(settings: OnlineSettings, log: Callable[[str], None]) -> list[reverb_mod.Room]:
    """The rooms online mixtures are reverberated in: the training pool of ``--rir-dir``'s RIRs, or simulated
    rooms with other placements than the stored ones; none when ``reverb_prob`` is 0."""
    if settings.reverb_prob <= 0:
        return []
    if settings.rir_dir:
        rooms = []
        for room in reverb_mod.rooms_from_dir(settings.rir_dir, lambda p: load_audio(p, SAMPLE_RATE)):
            sp = split_recordings(room.rir_names, settings.split_seed, settings.test_fraction)
            keep = [k for k, n in enumerate(room.rir_names) if sp.pool(n) == TRAIN]
            rooms.append(reverb_mod.Room(room.name, [room.rirs[k] for k in keep], [room.rir_names[k] for k in keep]))
        rooms = [r for r in rooms if r.rirs]
    else:
        rooms = reverb_mod.simulated_rooms(seed=ONLINE_ROOM_SEED, sr=SAMPLE_RATE)
    log(f"online reverberation (p = {settings.reverb_prob}): " +
        ", ".join(f"{r.name} ({len(r.rirs)} RIRs)" for r in rooms))
    return rooms


class OnlineAugmenter:
    """Mixes a fold's training utterances with fresh noise every epoch and computes their features."""

    def __init__(self, utterances: Sequence[TrainUtterance], train_speakers: Sequence[str],
                 blocked_speakers: Sequence[str], feature_record: dict, settings: OnlineSettings,
                 seed: int, device: str = "cpu", log: Callable[[str], None] = print,
                 cache_bytes: int = 4 << 30, epochs: int = 0, featuriser=None) -> None:
        """``epochs`` > 0: while the loop trains on epoch k, a background thread mixes epoch k + 1 (below
        ``epochs``), so the noise and feature work overlaps training (numpy and torch release the GIL).
        ``featuriser``: what a mixture becomes (lancet.training.online_features; default the store's features
        on ``device``)."""
        settings.check()
        self.s = settings
        self.seed = int(seed)
        self.utts = list(utterances)
        self.train_speakers = tuple(sorted(set(train_speakers)))
        self.blocked = tuple(sorted(set(blocked_speakers)))
        leaked = {u.speaker for u in self.utts} & set(self.blocked)
        if leaked:
            raise AssertionError(f"online training utterances of test/validation speakers {sorted(leaked)}")
        self.featuriser = featuriser if featuriser is not None else SegmentFeatures(feature_record, str(device))
        self.shape = tuple(self.featuriser.shape)
        self.epochs = int(epochs)
        self._ahead: dict[int, "cf.Future"] = {}
        self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lancet-online") if epochs > 0 else None
        self._clean: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # paired views: the clean view, computed once
        self.cache = _Cache(cache_bytes)
        self.xf = int(round(settings.crossfade_s * SAMPLE_RATE))
        self.by_speaker = speakers_index(self.utts)
        self.sources, self.splits = training_sources(settings, len(self.by_speaker), log)
        self.rooms = training_rooms(settings, log)

    # -------------------------------------------------------------- one mixture
    def _noise(self, utt: TrainUtterance, noise_type: str, length: int, rng: np.random.Generator):
        """(noise, what it is, the speakers heard in it): as stored mixtures draw it, but corpus babble
        is made of the fold's training speakers only (asserted)."""
        speakers: list[str] = []

        def corpus_babble(n: int, r: np.random.Generator) -> tuple[np.ndarray, str, list[int]]:
            pool = babble_mod.fold_talkers(utt.speaker, self.by_speaker, self.train_speakers)
            load = lambda i: self.cache.get(self.utts[i].path)  # noqa: E731
            seg, keys, offs = babble_mod.babble_for(utt.speaker, pool, self.s.babble_speakers, n, load, r, self.xf)
            speakers.extend(self.utts[k].speaker for k in keys)
            babble_mod.assert_fold_babble(speakers, self.train_speakers, self.blocked, (), f"online babble for {utt.id}")
            return seg, "babble:" + "+".join(self.utts[k].id for k in keys), list(offs)

        seg, what, _ = draw_noise(self.sources[noise_type], length, rng, self.xf, self.cache.get, corpus_babble,
                                  self.s.babble_speakers)
        return seg, what, speakers

    def mix(self, utt: TrainUtterance, rng: np.random.Generator) -> Mixture:
        """Draw a noise type, SNR and (maybe) a room for ``utt`` and mix, as augment_IEMOCAP.py does.

        With ``clean_prob`` > 0 the utterance is first kept as it is with that probability (SNR +inf, noise
        type ``clean``). The draw is skipped at 0, so runs without a clean share see the same noise as before."""
        speech = self.cache.get(utt.path).astype(np.float64)
        if self.s.clean_prob > 0 and rng.random() < self.s.clean_prob:
            return Mixture(speech.copy(), speech.astype(np.float32), float("inf"), CLEAN, "")
        room = ""
        if self.rooms and rng.random() < self.s.reverb_prob:
            r = self.rooms[int(rng.integers(len(self.rooms)))]
            speech, _ = reverb_mod.reverberate(speech, r.rirs[int(rng.integers(len(r.rirs)))])
            speech = speech.astype(np.float64)
            room = r.name
        noise_type = self.s.noise_types[int(rng.integers(len(self.s.noise_types)))]
        snr = float(rng.uniform(self.s.snr_low, self.s.snr_high))
        noise, noise_file, talkers = self._noise(utt, noise_type, speech.size, rng)
        if is_silent(noise):
            raise SilentSignalError(f"{noise_file}: silent noise segment")
        mixture, gain = mix_at_snr(speech, noise, snr)
        return Mixture(mixture, (gain * speech).astype(np.float32), snr, noise_type, noise_file, talkers, room)

    # -------------------------------------------------------------- features
    def features_of(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(segments' features float32 (n, F, T), valid frames (n,)) of one utterance's audio, as extraction does."""
        units, lengths = self.featuriser.cut(audio)
        if not units:
            return np.zeros((0,) + self.shape, np.float32), np.zeros(0, np.int64)
        return self.featuriser.compute(units), np.array(lengths, dtype=np.int64)

    def clean_features(self, u: TrainUtterance) -> tuple[np.ndarray, np.ndarray]:
        """(features, valid frames) of ``u``'s clean segments, computed on first use and kept: the clean view
        of paired training does not change between epochs."""
        if u.id not in self._clean:
            self._clean[u.id] = self.features_of(self.cache.get(u.path))
        return self._clean[u.id]

    def epoch_table(self, epoch: int) -> SegmentTable:
        """A fresh noisy copy of every training utterance: the segment table of epoch ``epoch`` (0-based).

        The same for a given (seed, epoch) whether it was prepared ahead or not; starts preparing the next."""
        fut = self._ahead.pop(epoch, None)
        table = fut.result() if fut is not None else self.make_table(epoch)
        if self._pool is not None and epoch + 1 < self.epochs and epoch + 1 not in self._ahead:
            self._ahead[epoch + 1] = self._pool.submit(self.make_table, epoch + 1)
        return table

    def make_table(self, epoch: int, batch_segments: int = 512) -> SegmentTable:
        """Mix and featurise epoch ``epoch``'s copies of the training utterances.

        Every utterance gets ``copies`` fresh mixtures (drawn one after the other from the epoch's
        generator, so one copy is exactly the table of plain online training). With ``paired`` the table
        holds views instead: view 0 the clean segments, view k the k-th noisy copy, view-major and aligned
        (lancet.training.views); an utterance whose noise cannot be drawn is left out of every view.
        Segments of many utterances go through the feature path together (``batch_segments`` at a time):
        one FFT call per batch, on the GPU when training runs there."""
        rng = np.random.default_rng([self.seed, int(epoch), 0x0E11])
        n_views = 1 + self.s.copies if self.s.paired else 1
        views = [_ViewParts(self, f"{ONLINE_CONDITION}{v or ''}", batch_segments) for v in range(n_views)]
        skipped = 0
        for u in self.utts:
            try:
                noisy = [self.mix(u, rng).audio for _ in range(self.s.copies)]
            except SilentSignalError:
                skipped += 1
                continue
            if self.s.paired:  # the clean view (the same every epoch), then each noisy copy in its own view
                views[0].add_ready(u, *self.clean_features(u))
                for view, audio in zip(views[1:], noisy):
                    view.add(u, audio)
            else:
                for k, audio in enumerate(noisy):
                    views[0].add(u, audio, copy=k)
        self.last_skipped = skipped
        return _ViewParts.table(views)


class _ViewParts:
    """The segments of one view of an online epoch as they are mixed: featurised in batches, then a table."""

    def __init__(self, aug: "OnlineAugmenter", condition: str, batch_segments: int) -> None:
        self.aug, self.condition, self.batch_segments = aug, condition, batch_segments
        self.feats: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.utt: list[np.ndarray] = []
        self.keys: list[tuple[str, str]] = []
        self.pending: list[np.ndarray] = []
        self.n_pending = 0

    def add(self, u: "TrainUtterance", audio: np.ndarray, copy: int = 0) -> None:
        units, lengths = self.aug.featuriser.cut(audio)
        if not units:
            return
        self.pending.extend(units)
        self.n_pending += len(units)
        self.lengths.append(np.array(lengths, dtype=np.int64))
        self.labels.append(np.full(len(units), u.label, np.int64))
        self.utt.append(np.full(len(units), len(self.keys), np.int64))
        self.keys.append((self.condition if not copy else f"{self.condition}#{copy}", u.id))
        if self.n_pending >= self.batch_segments:
            self.flush()

    def add_ready(self, u: "TrainUtterance", feats: np.ndarray, lengths: np.ndarray) -> None:
        """Segments whose features are already computed (the clean view), in order after the pending ones."""
        if not len(feats):
            return
        self.flush()
        self.feats.append(feats)
        self.lengths.append(lengths)
        self.labels.append(np.full(len(feats), u.label, np.int64))
        self.utt.append(np.full(len(feats), len(self.keys), np.int64))
        self.keys.append((self.condition, u.id))

    def flush(self) -> None:
        if self.pending:
            self.feats.append(self.aug.featuriser.compute(self.pending))
        self.pending, self.n_pending = [], 0

    @staticmethod
    def table(views: list["_ViewParts"]) -> SegmentTable:
        """One table of every view's segments, view-major (views of one length: each holds the same segments)."""
        for view in views:
            view.flush()
        if not views[0].feats:
            raise LancetError("online augmentation produced no training segments")
        x = np.concatenate([f for view in views for f in view.feats])
        n = len(x)
        if n % len(views):  # pragma: no cover - every view cuts the same audio lengths into segments
            raise RuntimeError("online views of different lengths")
        offsets = np.cumsum([0] + [len(view.keys) for view in views])
        utt = np.concatenate([np.concatenate(view.utt) + off for view, off in zip(views, offsets)])
        featuriser = views[0].aug.featuriser
        return featuriser.finish(featuriser.table_class(
            [x], np.zeros(n, np.int32), np.arange(n, dtype=np.int64),
            np.concatenate([a for view in views for a in view.labels]),
            np.concatenate([a for view in views for a in view.lengths]), utt,
            [k for view in views for k in view.keys], [view.condition for view in views], views=len(views)))
