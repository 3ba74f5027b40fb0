"""A hurried researcher's corpora: converted copies tied to their sources, paths that cannot lead out, and
every file under a corpus folder either used or counted with its reason."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lancet.core.errors import LancetError
from lancet.corpora.emodb import scan_emodb
from lancet.corpora.folder import scan_folder


def _tone(path: Path, f0: float, sr: int = 22050, seconds: float = 0.6) -> None:
    t = np.arange(int(seconds * sr)) / sr
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), sr)


def _emodb(root: Path, f0: float) -> Path:
    for name in ("03a01Fa", "08a01Wa", "10a01Na", "13a01Ta"):
        _tone(root / "wav" / f"{name}.wav", f0)
    return root


def test_two_corpora_sharing_a_converted_folder_never_share_audio(tmp_path):
    conv = tmp_path / "16k"
    first = scan_emodb(_emodb(tmp_path / "one", 200.0), converted_dir=conv)
    copy = Path(first.utterances[0].path)
    before = copy.read_bytes()
    with pytest.raises(LancetError, match=r"already holds the converted copy of .*one/wav/03a01Fa\.wav.*another "
                                          r"--converted-dir"):
        scan_emodb(_emodb(tmp_path / "two", 400.0), converted_dir=conv)   # the same relative names
    assert copy.read_bytes() == before                                   # the first corpus's audio untouched


def test_a_recording_replaced_in_place_is_converted_again(tmp_path):
    conv = tmp_path / "16k"
    root = _emodb(tmp_path / "emodb", 200.0)
    path = Path(scan_emodb(root, converted_dir=conv).utterances[0].path)
    old = sf.read(path)[0]
    time.sleep(0.01)
    _tone(root / "wav" / "03a01Fa.wav", 900.0)                           # same name, new content
    again = Path(next(u.path for u in scan_emodb(root, converted_dir=conv).utterances if u.id == "03a01Fa"))
    new = sf.read(again)[0]
    assert again == path and not np.allclose(old, new)
    spectrum = np.abs(np.fft.rfft(new))
    assert abs(np.argmax(spectrum) * 16000 / len(new) - 900.0) < 5      # the new recording's pitch, at 16 kHz


def test_dot_dot_in_a_labelled_folder_path_stays_inside_the_converted_folder(tmp_path):
    _tone(tmp_path / "elsewhere" / "x.wav", 300.0)
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "labels.csv").write_text("path,label,speaker\nsub/../../elsewhere/x.wav,angry,s1\n")
    conv = tmp_path / "16k"
    scan = scan_folder(corpus / "labels.csv", converted_dir=conv)
    path = Path(scan.utterances[0].path).resolve()
    assert conv.resolve() in path.parents and "_outside" in path.parts
    assert not (tmp_path / "elsewhere" / "16k").exists() and not (tmp_path / "x.wav").exists()


def test_upper_case_extensions_are_read_and_other_files_counted(tmp_path):
    root = _emodb(tmp_path / "emodb", 200.0)
    os.rename(root / "wav" / "08a01Wa.wav", root / "wav" / "08a01Wa.WAV")
    (root / "wav" / "notes.txt").write_text("recording notes")
    (root / "wav" / "03a02Fa.flac").write_bytes(b"fLaC")
    scan = scan_emodb(root, converted_dir=tmp_path / "16k")
    assert {u.id for u in scan.utterances} == {"03a01Fa", "08a01Wa", "10a01Na", "13a01Ta"}
    assert scan.skipped == {"not a wav": 2}
    assert any("notes.txt: not a .wav file" in w for w in scan.warnings)
