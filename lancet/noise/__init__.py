"""Noise and reverberation augmentation at exact SNRs, so that models can be trained and tested on noisy speech.

Modules: :mod:`~lancet.noise.registry` (the noise types, one entry each), :mod:`~lancet.noise.mixing`
(SNR mixing, looping, anti-clipping, measuring), :mod:`~lancet.noise.sources` (where each noise comes
from), :mod:`~lancet.noise.generators` (generated noise and stand-ins), :mod:`~lancet.noise.babble`
(babble from other speakers), :mod:`~lancet.noise.reverb` (RIRs), :mod:`~lancet.noise.pools` (recordings
split into training and test pools), :mod:`~lancet.noise.augment` (the parallel, resumable driver), :mod:`~lancet.noise.download` (real noise
corpora: fetch, check, unpack into ``datasets/noise/``).
"""

from lancet.noise.mixing import measure_snr, mix_at_snr, power

__all__ = ["measure_snr", "mix_at_snr", "power"]
