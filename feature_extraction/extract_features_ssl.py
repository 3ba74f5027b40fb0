"""Extract the per-layer means of a self-supervised upstream (WavLM, HuBERT, wav2vec 2.0) into features/ssl/.

Run from the repository root: `python feature_extraction/extract_features_ssl.py --help`.
One row per utterance: the mean over its frames of every hidden state (layers + 1, hidden), the sufficient
statistic of SUPERB's frozen probe (docs/SSL.md); train it with `train_LANCET.py --features ssl --models
SSLProbe`. The checkpoint comes from a folder or the local Hugging Face cache and is never downloaded unless
--allow-download is given (the error names the download command). A rerun resumes.
"""

MANIFEST = "datasets/IEMOCAP_standard/manifest.csv"
OUT_DIR = "features/ssl"
UPSTREAM = "microsoft/wavlm-base-plus"
KIND = "ssl"

if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too
    from lancet.features.ssl_cli import run_script

    run_script(MANIFEST, OUT_DIR, UPSTREAM, description=__doc__.splitlines()[0])
