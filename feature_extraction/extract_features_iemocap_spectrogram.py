"""Extract spectrogram features of IEMOCAP (every condition of the combined manifest) into features/spectrogram/.

Run from the repository root: `python feature_extraction/extract_features_iemocap_spectrogram.py --help`.
Parameters and their published values: lancet/features/params.py. Utterances shorter than a segment
are zero-padded (the original dropped them; `--short drop` does too). A rerun resumes.
"""

MANIFEST = "datasets/IEMOCAP_standard/manifest.csv"
OUT_DIR = "features/spectrogram"
KIND = "spectrogram"

if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too
    from lancet.features.cli import run_script

    run_script(KIND, MANIFEST, OUT_DIR, description=__doc__.splitlines()[0])
