"""Extract Mel bands with per-channel energy normalisation (PCEN) of every condition into features/pcen/.

Run from the repository root: `python feature_extraction/extract_features_iemocap_pcen.py --help`.
The Mel bands are log-Mel's (128 bands, n_fft 400, hop 160); PCEN replaces the logarithm, with
librosa.pcen's defaults (lancet/features/params.py: PcenParams). Utterances shorter than a segment are
zero-padded (`--short drop` drops them). A rerun resumes.
"""

MANIFEST = "datasets/IEMOCAP_standard/manifest.csv"
OUT_DIR = "features/pcen"
KIND = "pcen"

if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too
    from lancet.features.cli import run_script

    run_script(KIND, MANIFEST, OUT_DIR, description=__doc__.splitlines()[0])
