"""A small synthetic corpus in the exact IEMOCAP release layout, so the pipeline runs with no download.

The audio is speech-like: a glottal source with a pitch contour, shaped by formant resonators into
syllables, grouped into words with pauses. Emotion moves pitch level and range, loudness, tempo,
spectral tilt and voice quality; each speaker has a voice of their own (pitch, vocal-tract length).
Per-utterance variation makes the classes overlap, so a model must learn rather than threshold.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from lancet.core.atomic import atomic_path
from lancet.core.audio import SAMPLE_RATE, write_wav


@dataclass(frozen=True)
class EmotionStyle:
    """How an emotion moves the voice, relative to a speaker's neutral voice."""

    pitch: float  # f0 multiplier
    pitch_range: float  # relative f0 excursion of the contour
    loudness_db: float
    tempo: float  # syllables per second multiplier
    tilt: float  # one-pole low-pass coefficient of the source: higher is darker
    breath: float  # aspiration noise relative to the voiced source


STYLES: dict[str, EmotionStyle] = {
    "neu": EmotionStyle(pitch=1.00, pitch_range=0.12, loudness_db=0.0, tempo=1.00, tilt=0.80, breath=0.04),
    "hap": EmotionStyle(pitch=1.22, pitch_range=0.30, loudness_db=3.0, tempo=1.12, tilt=0.70, breath=0.05),
    "exc": EmotionStyle(pitch=1.28, pitch_range=0.34, loudness_db=4.0, tempo=1.18, tilt=0.66, breath=0.05),
    "sad": EmotionStyle(pitch=0.90, pitch_range=0.06, loudness_db=-5.0, tempo=0.78, tilt=0.88, breath=0.10),
    "ang": EmotionStyle(pitch=1.15, pitch_range=0.22, loudness_db=6.0, tempo=1.20, tilt=0.55, breath=0.03),
    "fru": EmotionStyle(pitch=1.05, pitch_range=0.15, loudness_db=2.0, tempo=1.05, tilt=0.70, breath=0.06),
    "xxx": EmotionStyle(pitch=1.08, pitch_range=0.18, loudness_db=1.0, tempo=1.05, tilt=0.75, breath=0.05),
}

# Labels per speaker: the four classes (exc merged into happy by the default map) and a few that
# every class map drops.
LABEL_PLAN: dict[str, int] = {"neu": 10, "hap": 5, "exc": 4, "sad": 8, "ang": 8, "fru": 2, "xxx": 1}

# (F1, F2, F3) in Hz of an adult male voice for a few vowels.
VOWELS = np.array([[730, 1090, 2440], [530, 1840, 2480], [270, 2290, 3010],
                   [570, 840, 2410], [300, 870, 2240], [660, 1720, 2410]], dtype=float)

DIALOGS = ("impro01", "impro02", "script01_1", "script02_1")


@dataclass(frozen=True)
class Voice:
    """A speaker's own voice."""

    f0: float
    formant_scale: float
    jitter: float


def _rng(*keys: object) -> np.random.Generator:
    """A generator seeded from stable keys, independent of call order."""
    return np.random.default_rng([zlib.crc32(repr(k).encode()) for k in keys])


def speaker_voice(seed: int, session: int, gender: str) -> Voice:
    rng = _rng(seed, "voice", session, gender)
    if gender == "F":
        return Voice(f0=rng.uniform(190, 235), formant_scale=rng.uniform(1.12, 1.20), jitter=rng.uniform(0.01, 0.02))
    return Voice(f0=rng.uniform(100, 135), formant_scale=rng.uniform(0.96, 1.04), jitter=rng.uniform(0.01, 0.02))


def _resonator(x: np.ndarray, freq: float, bandwidth: float, sr: int) -> np.ndarray:
    """A second-order resonance at ``freq`` Hz (unit gain at DC removed by normalising peak)."""
    r = np.exp(-np.pi * bandwidth / sr)
    theta = 2 * np.pi * freq / sr
    a = [1.0, -2 * r * np.cos(theta), r * r]
    return lfilter([1.0 - r], a, x)


def synthesize_utterance(
    rng: np.random.Generator, voice: Voice, style: EmotionStyle, duration_s: float, sr: int = SAMPLE_RATE
) -> np.ndarray:
    """Synthesize one utterance of about ``duration_s`` seconds: words of syllables with pauses."""
    n_total = int(duration_s * sr)
    out = np.zeros(n_total, dtype=np.float64)
    # Per-utterance variation blurs the class boundaries.
    pitch = voice.f0 * style.pitch * rng.uniform(0.9, 1.1)
    pitch_range = style.pitch_range * rng.uniform(0.7, 1.3)
    rate = 4.5 * style.tempo * rng.uniform(0.9, 1.1)  # syllables per second
    tilt = float(np.clip(style.tilt + rng.normal(0, 0.04), 0.3, 0.95))
    pos = int(rng.uniform(0.05, 0.2) * sr)
    syllable_in_word = 0
    word_length = rng.integers(1, 4)
    while pos < n_total - int(0.12 * sr):
        syl_len = int(sr / rate * rng.uniform(0.7, 1.2))
        syl_len = min(syl_len, n_total - pos)
        progress = pos / n_total
        t = np.arange(syl_len) / sr
        # Contour: declination over the utterance, an accent per syllable, micro jitter.
        accent = rng.normal(0, 1) * pitch_range
        contour = 1 + pitch_range * (0.5 - progress) + accent * np.sin(np.pi * t / t[-1] if syl_len > 1 else 0)
        f0 = pitch * contour * (1 + voice.jitter * rng.standard_normal(syl_len).cumsum() / np.sqrt(syl_len))
        f0 = np.clip(f0, 60, 500)
        phase = np.cumsum(f0 / sr) + rng.uniform()
        source = 2 * (phase % 1.0) - 1  # sawtooth: all harmonics, -6 dB/octave
        source = lfilter([1 - tilt], [1, -tilt], source)  # emotion-dependent spectral tilt
        source = source + style.breath * rng.standard_normal(syl_len)
        formants = VOWELS[rng.integers(len(VOWELS))] * voice.formant_scale * rng.uniform(0.95, 1.05)
        voiced = sum(_resonator(source, f, 60 + 0.06 * f, sr) * g for f, g in zip(formants, (1.0, 0.6, 0.3)))
        envelope = np.sin(np.pi * np.linspace(0, 1, syl_len)) ** 0.7
        out[pos:pos + syl_len] += voiced * envelope
        pos += syl_len
        syllable_in_word += 1
        if syllable_in_word >= word_length:  # a pause between words, longer when slow
            pos += int(sr * rng.uniform(0.05, 0.25) / style.tempo)
            syllable_in_word = 0
            word_length = rng.integers(1, 4)
    peak = np.max(np.abs(out)) or 1.0
    gain_db = style.loudness_db + rng.uniform(-3, 3)  # emotion loudness plus microphone distance
    audio = out / peak * 0.25 * 10 ** (gain_db / 20)
    audio += 10 ** (-60 / 20) * rng.standard_normal(n_total)  # recording noise floor
    return np.clip(audio, -0.99, 0.99).astype(np.float32)


def _format_time(x: float) -> str:
    return f"{x:.4f}"


def make_demo_corpus(out_dir: str | Path, seed: int = 0, utterances_per_speaker: int = 38) -> dict:
    """Write the demo corpus under ``out_dir`` in the IEMOCAP release layout; return label counts.

    ``utterances_per_speaker`` scales :data:`LABEL_PLAN` (rounded, at least one of each label; 38 per
    speaker gives exactly the plan: 380 utterances, 350 in the four classes).
    Deterministic for a seed: the same seed writes the same bytes.
    """
    out_dir = Path(out_dir)
    base_total = sum(LABEL_PLAN.values())
    counts = {lab: max(1, round(n * utterances_per_speaker / base_total)) for lab, n in LABEL_PLAN.items()}
    label_counts: Counter = Counter()
    for session in range(1, 6):
        ses = f"Session{session}"
        dialog_lines: dict[str, list[str]] = {}
        dialog_clock: dict[str, float] = {}
        turns: Counter = Counter()
        for gender in ("F", "M"):
            voice = speaker_voice(seed, session, gender)
            labels = [lab for lab, n in counts.items() for _ in range(n)]
            order = _rng(seed, "order", session, gender).permutation(len(labels))
            for k, idx in enumerate(order):
                label = labels[idx]
                lead = "F" if k % 2 == 0 else "M"
                dialog = f"Ses{session:02d}{lead}_{DIALOGS[k % len(DIALOGS)]}"
                utt_no = turns[(dialog, gender)]
                turns[(dialog, gender)] += 1
                utt_id = f"{dialog}_{gender}{utt_no:03d}"
                rng = _rng(seed, "utt", utt_id)
                duration = float(rng.uniform(1.0, 5.0))
                audio = synthesize_utterance(rng, voice, STYLES[label], duration)
                write_wav(out_dir / ses / "sentences" / "wav" / dialog / f"{utt_id}.wav", audio)
                start = dialog_clock.get(dialog, 0.0) + float(rng.uniform(0.2, 1.5))
                end = start + duration
                dialog_clock[dialog] = end
                vad = ", ".join(f"{v:.4f}" for v in rng.uniform(1.5, 4.5, size=3))
                dialog_lines.setdefault(dialog, []).append(
                    f"[{_format_time(start)} - {_format_time(end)}]\t{utt_id}\t{label}\t[{vad}]")
                label_counts[label] += 1
        for dialog, lines in dialog_lines.items():
            body = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            for line in sorted(lines, key=lambda s: float(s[1:].split(" - ")[0])):
                label = line.split("\t")[2]
                body += [line, f"C-E1:\t{_annotator_label(label)};\t()", "A-E1:\tval 3; act 3; dom  3;\t()", ""]
            path = out_dir / ses / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
            with atomic_path(path) as tmp:
                tmp.write_text("\n".join(body) + "\n")
    return dict(label_counts)


def _annotator_label(label: str) -> str:
    return {"neu": "Neutral state", "hap": "Happiness", "exc": "Excited", "sad": "Sadness", "ang": "Anger",
            "fru": "Frustration", "xxx": "Other"}[label]
