"""Make noisy and reverberant copies of every corpus utterance, at exact SNRs, in the IEMOCAP layout.

    python datasets/augment_IEMOCAP.py [--manifest datasets/IEMOCAP_manifest.csv] [--out datasets/IEMOCAP_augmented]

Writes <out>/<noise>/<snr>/SessionN/sentences/wav/<dialog>/<id>.wav for every noise type of
lancet/noise/registry.py at each SNR, <out>/reverberation/<room>/SessionN/..., the label files alongside, and
<out>/augmented_manifest.csv. SNR = speech power / noise power over the whole utterance (silence included),
in dB. Interrupted? Run the same command again: it continues where it stopped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too

from lancet.core.manifest import read_manifest  # noqa: E402
from lancet.core.errors import HelpFormatter, run_cli  # noqa: E402
from lancet.core.locking import WAIT_FLAG_HELP  # noqa: E402
from lancet.noise.augment import DEFAULT_SNRS, SUBTYPES, AugmentConfig, augment  # noqa: E402
from lancet.noise.babble import DEFAULT_TALKERS  # noqa: E402
from lancet.noise.reverb import DEFAULT_ROOMS, ROOM_PRESETS, RIRS_PER_ROOM  # noqa: E402
from lancet.noise.registry import NOISE_TYPES, noise_dir_layout  # noqa: E402
from lancet.noise.sources import SHARED_NOISE_DIR, describe_fallbacks  # noqa: E402
from lancet.core.workers import available_cpus  # noqa: E402

MANIFEST = "datasets/IEMOCAP_manifest.csv"
IEMOCAP_DIR = None            # original release, for the label files; None: found from the manifest's paths
OUT = "datasets/IEMOCAP_augmented"
SNRS = [int(s) for s in DEFAULT_SNRS]   # -5 0 5 10 15 20 dB
NOISE = list(NOISE_TYPES)     # every registered noise type
NOISE_DIR = None              # folder with a sub-folder per noise type (ours or MUSAN's names)
BABBLE_SPEAKERS = DEFAULT_TALKERS
RIR_DIR = None                # folder of RIR wavs; None: simulated large rooms
ROOMS = list(DEFAULT_ROOMS)
SEED = 0
WORKERS = available_cpus()     # cores this process may use
SUBTYPE = "PCM_16"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--manifest", default=MANIFEST, help="corpus manifest (datasets/prepare_IEMOCAP.py)")
    p.add_argument("--iemocap-dir", default=IEMOCAP_DIR,
                   help="original IEMOCAP folder, to copy label files alongside (default: found from the manifest)")
    p.add_argument("--out", default=OUT, help="output folder")
    p.add_argument("--snrs", type=float, nargs="+", default=SNRS, help="SNRs in dB")
    p.add_argument("--noise-types", nargs="+", default=NOISE, choices=NOISE_TYPES, help="noise types")
    p.add_argument("--noise-dir", default=NOISE_DIR,
                   help=f"folder with {noise_dir_layout()} (ours|MUSAN's names); without it, the noise "
                        f"datasets/download_noise.py unpacked into datasets/noise/ if any, else: "
                        f"{describe_fallbacks(SHARED_NOISE_DIR)}")
    p.add_argument("--babble-speakers", type=int, default=BABBLE_SPEAKERS,
                   help="utterances of other speakers summed into babble")
    p.add_argument("--babble-pool", default="session", choices=("session", "corpus"),
                   help="session: babble talkers from the target's own session only, so no fold ever trains on a "
                        "test speaker's voice; corpus: any other speaker (leaks test voices into training babble)")
    p.add_argument("--rir-dir", default=RIR_DIR,
                   help="folder of room impulse responses (each sub-folder a room); default: simulated large rooms")
    p.add_argument("--rooms", nargs="+", default=ROOMS, choices=sorted(ROOM_PRESETS),
                   help="simulated rooms when no --rir-dir is given")
    p.add_argument("--rirs-per-room", type=int, default=RIRS_PER_ROOM, help="simulated RIRs (placements) per room")
    p.add_argument("--no-reverb", action="store_true", help="skip reverberation")
    p.add_argument("--seed", type=int, default=SEED, help="seed of every random choice")
    p.add_argument("--workers", type=int, default=WORKERS, help="worker processes")
    p.add_argument("--subtype", default=SUBTYPE, choices=SUBTYPES,
                   help="wav sample format (FLOAT keeps even very quiet speech exact to 0.1 dB)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--wait", action="store_true", help=WAIT_FLAG_HELP)
    args = p.parse_args()
    utterances = read_manifest(args.manifest)
    config = AugmentConfig(
        out=Path(args.out), snrs=args.snrs, noise_types=args.noise_types,
        noise_dir=Path(args.noise_dir) if args.noise_dir else None, babble_speakers=args.babble_speakers,
        babble_pool=args.babble_pool,
        reverb=not args.no_reverb, rir_dir=Path(args.rir_dir) if args.rir_dir else None, rooms=args.rooms,
        rirs_per_room=args.rirs_per_room, iemocap_dir=Path(args.iemocap_dir) if args.iemocap_dir else None,
        seed=args.seed, workers=args.workers, subtype=args.subtype, progress=not args.no_progress,
        wait=args.wait)
    augment(utterances, config)
    return 0


if __name__ == "__main__":
    run_cli(main)
