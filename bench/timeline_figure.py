"""The timeline figure of the README: a recording whose emotion changes, labelled over time by a run's models.

    PYTHONPATH=. python bench/timeline_figure.py --checkpoint results/demo --model LANCET
    PYTHONPATH=. python bench/timeline_figure.py --checkpoint results/demo --model LANCET --out docs/timeline_demo.png

The recording is synthesised with the demo corpus's voice model (lancet.corpora.demo) for a speaker of
another seed than the corpus's, so no model has heard the voice: ``--seconds`` of each emotion in
``--order``, each stretch made of utterances of 2-4 s with short pauses. It is labelled with
``predict.py``'s code (the run folder's fold models voting, default windows: the training segment and
hop), and the PNG shows the class probabilities, the labels and, under them, the reference (what the
synthesiser was asked for). The recording (WAV) and the timeline (CSV) are written beside the PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lancet.core.audio import SAMPLE_RATE, write_wav
from lancet.corpora.demo import STYLES, speaker_voice, synthesize_utterance
from lancet.training.ensemble import load_ensemble
from lancet.training.predict import predict_files
from lancet.training.timeline import plot_timeline, write_timeline_csv

CLASS_OF = {"neu": "neutral", "hap": "happy", "sad": "sad", "ang": "angry"}
ORDER = ("neu", "ang", "sad", "hap", "neu")
SECONDS = 12.0          # per emotion
PAUSE_S = 0.3           # between utterances
VOICE_SEED = 101        # another seed than the demo corpus's (0): a voice no model heard


def synthesise(order: tuple[str, ...], seconds: float, seed: int = VOICE_SEED) -> tuple[np.ndarray, list]:
    """(audio, reference spans (start s, end s, class)) of a recording going through ``order``."""
    voice = speaker_voice(seed, 1, "F")
    rng = np.random.default_rng(seed)
    parts, spans, at = [], [], 0.0
    for label in order:
        start = at
        while at - start < seconds:
            audio = synthesize_utterance(rng, voice, STYLES[label], float(rng.uniform(2.0, 4.0)))
            parts += [audio, np.zeros(int(PAUSE_S * SAMPLE_RATE), np.float32)]
            at += len(audio) / SAMPLE_RATE + PAUSE_S
        spans.append((start, at, CLASS_OF[label]))
    return np.concatenate(parts), spans


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", nargs="+", required=True, help="a run folder or best.pt files")
    p.add_argument("--model", default=None, help="the model type, when the run folder holds several")
    p.add_argument("--out", default="docs/timeline_demo.png")
    p.add_argument("--order", nargs="+", default=list(ORDER), choices=sorted(CLASS_OF))
    p.add_argument("--seconds", type=float, default=SECONDS)
    args = p.parse_args()
    out = Path(args.out)
    audio, spans = synthesise(tuple(args.order), args.seconds)
    recording = out.with_suffix(".wav")
    write_wav(recording, audio)
    ens = load_ensemble(args.checkpoint, args.model, "cpu")
    results, classes = predict_files(args.checkpoint, [recording], timeline=True, ensemble=ens)
    rows = results[0]["timeline"]
    write_timeline_csv(out.with_suffix(".csv"), rows, classes)
    plot_timeline(out, rows, classes, f"a synthetic recording ({len(audio) / SAMPLE_RATE:.0f} s, a voice no model "
                  f"heard) — {ens.describe()}", reference=spans)
    agree = np.mean([any(s <= r.centre_s < e and c == r.label for s, e, c in spans) for r in rows])
    print(f"{out}: {len(rows)} windows, {100 * agree:.0f} % labelled as the reference at their centre; "
          f"file label {results[0]['label']}")


if __name__ == "__main__":
    main()
