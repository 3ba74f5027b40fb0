"""Every training default in one place, and the resolved configuration of a run.

The defaults follow the published LANCET trainer (RAdam 1e-3, weight decay 1e-6, exponential decay
0.95 per epoch with a floor of 1e-6, batch 32, 50 epochs, mixup alpha 0.5, seed 987654) except in two
places. The protocol: this project defaults to leave-one-session-out (speaker-independent); the published
random 80/10/10 utterance split is ``protocol="random"`` and is reported as speaker-dependent. The
training data: every batch holds its segments clean and with fresh noise side by side (``train_on="online"``
with ``online_paired``), chosen from the robustness studies in docs/ROBUSTNESS.md; clean-only training is ``train_on="clean"`` and the published one model per noise
condition is ``train_on="matched"``.

Each field of :class:`TrainConfig` carries, besides its default, everything else said about the setting
once: its help text and group (the command line is generated from them), its choices or allowed range
(checked by :func:`check_fields`), whether a rerun into the same run folder must share it (``identity``)
and whether the training loop reads it (``loop``: :class:`TrainSettings` is derived from those fields).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from lancet.core.checks import SNR_RANGE_DB, Range
from lancet.core.classes import CLASS_MAPS as _CLASS_MAPS
from lancet.core.device import AMP_MODES, DEVICES
from lancet.core.errors import HelpFormatter, LancetError
from lancet.core.locking import WAIT_FLAG_HELP
from lancet.features.params import KINDS as FEATURE_KINDS
from lancet.features.params import has_frames_axis
from lancet.models import MODELS, parse_model_options
from lancet.noise.pools import SPLIT_SEED, TEST_FRACTION
from lancet.noise.registry import NOISE_TYPES, online_default

from .feature_norm import NORM_MODES
from .views import CONSISTENCY

PROTOCOLS = ("loso", "random")
CLASS_MAPS = tuple(_CLASS_MAPS)  # all: every class the features hold
POOLINGS = ("mean", "vote")
TRAIN_ON = ("clean", "matched", "all", "online")  # online: fresh noise every epoch (lancet.training.online)
COMPILE_MODES = ("auto", "on", "off")
# the CNNs: a head over a self-supervised upstream (input kind without a frames axis) is asked for by name
DEFAULT_MODELS = tuple(name for name, entry in MODELS.items() if has_frames_axis(entry.input_kind))

DEFAULT_SEED = 987654
RANDOM_SPLIT_STATE = 42          # random_state of the published stratified 80/10/10 split
RANDOM_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
NORM_STATS_MAX_MB = 512.0        # normalisation statistics use at most this much training data (random subsample above)


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)
PROBABILITY = Range(0, 1)


Choices = tuple | Callable[[], tuple]


def opt(default: Any, help: str | Callable[[], str], group: str, choices: Choices | None = None, *,
        valid: Range | None = None, identity: bool = True, loop: bool = False) -> Any:
    """A :class:`TrainConfig` field: its default plus the command-line help, group, choices or range.

    ``choices`` (and ``help``, where it lists them): a tuple (a text), or a function returning one when
    they come from a registry that may grow after this module is imported (a noise type, feature kind or
    model added by an extension); ``default`` may be such a function too. ``identity``: a rerun into the
    same run folder must use the same value (it changes what is computed); settings of where and how a run
    goes (group ``run``) never are. ``loop``: the training loop reads it.
    """
    meta = {"help": help, "group": group, "identity": identity and group != "run", "loop": loop}
    if choices is not None:
        meta["choices"] = choices if callable(choices) else tuple(choices)
    if valid is not None:
        meta["valid"] = valid
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    if callable(default):  # read when a config is made, like callable choices
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


NOISE = "noise robustness (docs/ROBUSTNESS.md)"
SSL = "self-supervised upstreams (--features ssl; docs/SSL.md)"


@dataclass
class TrainConfig:
    """The resolved settings of one training run (saved as ``config.json``)."""

    # --- data
    features_dir: str = opt("features", "folder holding <kind>/ feature stores", "data", identity=False)
    features: str = opt("mel", "feature kind", "data", choices=lambda: tuple(FEATURE_KINDS))
    classes: str = opt("4class", "class map", "data", choices=CLASS_MAPS)
    improvised_only: bool = opt(False, "use improvised dialogs only", "data")
    protocol: str = opt("loso", "loso: leave-one-session-out (speaker-independent); random: the published "
                        "80/10/10 split (speaker-dependent)", "data", choices=PROTOCOLS)
    # a run may grow by folds, models and seeds: each unit's metrics are its own
    folds: tuple[str, ...] | None = opt(None, "run only these folds (e.g. 1 3 or fold1)", "data", identity=False)
    train_on: str = opt("online", "online (fresh noise, SNR and room every epoch, the default chosen by the study in "
                        "docs/ROBUSTNESS.md); clean; matched (one model per condition, as published); all "
                        "(multi-condition)", "data", choices=TRAIN_ON)
    test_features_dir: str | None = opt(None, "cross-corpus: also test every fold's model on all of this folder's "
                                        "<kind>/ store (same features and class map); reported as its own table", "data",
                                        identity=False)
    # --- the recipe (published LANCET trainer)
    models: tuple[str, ...] = opt(DEFAULT_MODELS, lambda: "models to train, any of: " + ", ".join(
                                  f"{m.name} ({m.paper})" for m in MODELS.values()), "recipe", identity=False)
    model_options: dict[str, Any] = opt({}, "model options as KEY=VALUE (all models) or MODEL.KEY=VALUE, "
                                        "e.g. TCNet.residual=false", "recipe")
    seeds: tuple[int, ...] = opt((DEFAULT_SEED,), "seeds; results are mean ± std over them", "recipe", identity=False)
    epochs: int = opt(50, "training epochs", "recipe", valid=AT_LEAST_ONE, loop=True)
    batch_size: int = opt(32, "training batch size", "recipe", valid=AT_LEAST_ONE, loop=True)
    lr: float = opt(1e-3, "RAdam learning rate", "recipe", valid=POSITIVE, loop=True)
    weight_decay: float = opt(1e-6, "RAdam weight decay", "recipe", valid=NON_NEGATIVE, loop=True)
    lr_decay: float = opt(0.95, "exponential learning-rate decay per epoch", "recipe", valid=Range(0, 1, low_open=True),
                          loop=True)
    lr_floor: float = opt(1e-6, "the learning rate never decays below this", "recipe", valid=NON_NEGATIVE, loop=True)
    mixup_alpha: float = opt(0.5, "mixup Beta(alpha, alpha); 0 disables", "recipe",
                             valid=Range(0, note="0 disables mixup"), loop=True)
    class_weighted: bool = opt(False, "inverse-frequency class-weighted cross entropy", "recipe", loop=True)
    pooling: str = opt("mean", "utterance pooling of segment outputs", "recipe", choices=POOLINGS, loop=True)
    patience: int | None = opt(None, "stop after this many epochs without validation gain (default: off)", "recipe",
                               valid=AT_LEAST_ONE, loop=True)
    # --- where and how it runs (does not change what is computed, up to float rounding)
    run_name: str | None = opt(None, "results subfolder (default: derived from the settings)", "run")
    results_dir: str = opt("results", "folder of all runs", "run")
    device: str = opt("auto", "auto: CUDA when present", "run", choices=DEVICES)
    amp: str = opt("auto", "autocast: auto = bf16 (else fp16) on CUDA, off on CPU", "run", choices=AMP_MODES)
    compile: str = opt("auto", "compiled training and evaluation steps, data resident on the device, randomness "
                       "drawn per epoch; auto: on for CUDA, off for CPU; off: the plain reference loop", "run",
                       choices=COMPILE_MODES, loop=True)
    eval_batch_size: int = opt(256, "segments per evaluation batch", "run", valid=AT_LEAST_ONE, loop=True)
    workers: int = opt(2, "threads that gather batches ahead, for memory-mapped segments or a GPU (0: none)", "run",
                       valid=NON_NEGATIVE, loop=True)
    threads: int = opt(0, "torch CPU threads (0: half the usable cores, which degrades gracefully when other jobs "
                       "share the machine; give all of them on a quiet one)", "run",
                       valid=Range(0, note="0: all cores"))
    ram_budget_gb: float = opt(8.0, "a split's segments are copied to RAM when they fit, else the memory "
                               "map is indexed", "run", valid=Range(0, note="0: always memory-map"))
    device_budget_gb: float = opt(0.0, "with --compile on CUDA: the training and validation segments stay on the "
                                  "GPU when they fit in this (0: half the free GPU memory), else they stream", "run",
                                  valid=NON_NEGATIVE, loop=True)
    jobs: int = opt(0, "units trained at once on this process's device; 0: as many as fit (CUDA: from free "
                    "memory; CPU: 1)", "run", valid=Range(0, note="0: as many as fit"))
    ddp: bool = opt(False, "under torchrun: train each unit data-parallel across all ranks instead of sharing "
                    "the units", "run")
    wait: bool = opt(False, WAIT_FLAG_HELP, "run")
    progress: bool = opt(True, "tqdm progress bars", "run", loop=True)
    tensorboard: str | None = opt(None, "also log every unit's learning curves (results/<run>/history/) to this "
                                  "folder for TensorBoard; needs the optional tensorboard package", "run")
    # --- noise robustness
    norm: str = opt("global", "global: fold training statistics; utterance: per-utterance mean/variance (CMVN); "
                    "segment", NOISE, choices=NORM_MODES)
    specaugment: bool = opt(False, "time and frequency masks on training batches", NOISE)
    specaugment_time_masks: int = opt(2, "time masks per segment", NOISE, valid=NON_NEGATIVE)
    specaugment_time_width: float = opt(0.1, "widest time mask: a fraction of the frames if < 1, else frames", NOISE,
                                        valid=NON_NEGATIVE)
    specaugment_freq_masks: int = opt(2, "frequency masks per segment", NOISE, valid=NON_NEGATIVE)
    specaugment_freq_width: float = opt(0.15, "widest frequency mask: a fraction of the bins if < 1, else bins", NOISE,
                                        valid=NON_NEGATIVE)
    online_snr_low: float = opt(-5.0, "--train-on online: lowest SNR (dB)", NOISE, valid=Range(*SNR_RANGE_DB))
    online_snr_high: float = opt(20.0, "--train-on online: highest SNR (dB)", NOISE, valid=Range(*SNR_RANGE_DB))
    online_noise_types: tuple[str, ...] = opt(online_default, "--train-on online: noise types", NOISE,
                                              choices=lambda: tuple(NOISE_TYPES))
    online_reverb_prob: float = opt(0.2, "--train-on online: probability of reverberating a mixture first", NOISE,
                                    valid=PROBABILITY)
    online_clean_prob: float = opt(0.0, "--train-on online: share of training utterances kept clean each epoch",
                                   NOISE, valid=Range(0, 1, high_open=True))
    online_copies: int = opt(1, "--train-on online: noisy copies of every training utterance per epoch, each a fresh "
                             "draw (alone: K times the steps of an epoch; with --online-paired: K noisy views in "
                             "every batch)", NOISE, valid=AT_LEAST_ONE)
    # paired views by default: in the EmoDB study (docs/ROBUSTNESS.md) they kept clean-only training's clean
    # accuracy and were the most accurate in noise of the recipes at about twice one noisy copy's compute
    online_paired: bool = opt(True, "--train-on online: every batch holds its segments clean and with fresh noise "
                              "side by side (twice the compute of one noisy copy; --finetune takes one noisy copy)",
                              NOISE)
    consistency: str = opt("off", "--online-paired: a term pulling the noisy views' predictions towards the clean "
                           "view's: kl (KL from the clean prediction, held fixed) or js (Jensen-Shannon)", NOISE,
                           choices=CONSISTENCY, loop=True)
    consistency_weight: float = opt(1.0, "--consistency: its weight against the cross entropy", NOISE,
                                    valid=NON_NEGATIVE, loop=True)
    # where the noise comes from does not decide the run's identity: the split and its seed do
    noise_dir: str | None = opt(None, "--train-on online: noise recordings as augment_IEMOCAP.py --noise-dir "
                                "(default: datasets/noise/ if downloaded, else the shared ones)", NOISE,
                                identity=False)
    rir_dir: str | None = opt(None, "--train-on online: RIR folder (default: simulated rooms)", NOISE, identity=False)
    audio_manifest: str | None = opt(None, "--train-on online: manifest with the clean audio (default: the one "
                                     "params.json names)", NOISE, identity=False)
    noise_manifest: str | None = opt(None, "augmented_manifest.csv of the stored noisy conditions, to test on unseen "
                                     "recordings only (default: found beside the standardised folder)", NOISE,
                                     identity=False)
    noise_split_seed: int = opt(SPLIT_SEED, "seed of the split of noise recordings into training and test pools", NOISE)
    noise_test_fraction: float = opt(TEST_FRACTION, "share of noise recordings kept for testing", NOISE,
                                     valid=Range(0, 1, low_open=True, high_open=True))

    # --- self-supervised upstreams
    # the upstream's identity is the store's (params.json): where its files lie does not change a number
    upstream: str | None = opt(None, "the upstream (folder, or hub name in the local cache) that --train-on online and "
                               "--finetune run, checked against the one the store was extracted with (default: that "
                               "one)", SSL, identity=False)
    finetune: bool = opt(False, "train on audio: the upstream runs in every step under the head (--models SSLProbe "
                         "or SSLAttentive), and the test conditions are read from their wavs", SSL)
    finetune_layers: int | None = opt(None, "--finetune: the top transformer layers that train (default: all above "
                                      "the frozen CNN; 0: the upstream stays frozen and the head reads its frames)",
                                      SSL, valid=NON_NEGATIVE)
    finetune_lr: float = opt(5e-5, "--finetune: RAdam learning rate of the upstream's layers (the head takes --lr)",
                             SSL, valid=POSITIVE, loop=True)
    finetune_warmup_epochs: int = opt(2, "--finetune: the upstream's learning rate rises linearly over these first "
                                      "epochs (0: from the start)", SSL, valid=NON_NEGATIVE, loop=True)
    audio_batch_seconds: float = opt(64.0, "--finetune: padded seconds of audio per batch (of at most --batch-size "
                                     "utterances, similar lengths together)", SSL, valid=POSITIVE)

    def __post_init__(self) -> None:
        self.models = tuple(self.models)
        self.seeds = tuple(int(s) for s in self.seeds)
        if self.folds is not None:
            self.folds = tuple(str(f) for f in self.folds)
        self.online_noise_types = tuple(self.online_noise_types)

    @property
    def improvised(self) -> bool:
        """Whether only improvised dialogs are used (``--improvised-only`` or ``--classes improvised``)."""
        return self.improvised_only or self.classes == "improvised"

    @property
    def paired_views(self) -> bool:
        """Whether the epochs hold paired clean/noisy views: ``--online-paired`` where it applies, online training
        of stored features or statistics (fine-tuning plans batches of audio by length, one noisy copy each)."""
        return self.online_paired and self.train_on == "online" and not self.finetune

    def resolved_run_name(self) -> str:
        """The run name, or one derived from the settings so that the same command resumes the same run."""
        if self.run_name:
            return self.run_name
        parts = [self.features, self.protocol, self.classes, f"train-{self.train_on}"]
        if self.improvised_only and self.classes != "improvised":
            parts.append("impro")
        if self.norm != "global":
            parts.append(f"norm-{self.norm}")
        if self.specaugment:
            parts.append("specaug")
        if self.finetune:
            parts.append("finetune" if self.finetune_layers is None else f"finetune{self.finetune_layers}")
        return "_".join(parts)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["models"] = list(self.models)
        out["seeds"] = list(self.seeds)
        out["online_noise_types"] = list(self.online_noise_types)
        out["folds"] = list(self.folds) if self.folds is not None else None
        out["run_name"] = self.resolved_run_name()
        out["speaker_independent"] = self.protocol == "loso"
        out["paired_views"] = self.paired_views
        return out

    def identity(self) -> dict[str, Any]:
        """The settings a rerun into the same run folder must share, as ``config.json`` holds them
        (JSON round trip: tuples become lists, so a reread config compares equal)."""
        data = self.to_json()
        return json.loads(json.dumps({k: data[k] for k in IDENTITY_FIELDS}))


#: Fields that change what a run computes: a rerun into the same results folder must match them.
IDENTITY_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["identity"])


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def default_of(name: str) -> Any:
    """The default of the :class:`TrainConfig` field ``name`` (for settings objects below the config).

    Example:
        >>> default_of("epochs")
        50
    """
    return _default(TrainConfig.__dataclass_fields__[name])


def _settings_class() -> type:
    """:class:`TrainSettings`: the ``loop`` fields of :class:`TrainConfig`, same names and defaults."""
    fields = [(f.name, f.type, field(default=_default(f))) for f in dataclasses.fields(TrainConfig) if f.metadata["loop"]]
    # torch.compile backend of the compiled path; tests use aot_eager, or None for the uncompiled fast path
    fields.append(("compile_backend", "str | None", field(default="inductor")))

    def from_config(cls, cfg: TrainConfig) -> "TrainSettings":
        return cls(**{name: getattr(cfg, name) for name in cls.__dataclass_fields__ if hasattr(cfg, name)})

    return dataclasses.make_dataclass(
        "TrainSettings", fields, namespace={
            "from_config": classmethod(from_config), "__module__": __name__,
            "__doc__": "The part of :class:`TrainConfig` one training loop needs (its ``loop`` fields, same defaults)."})


TrainSettings = _settings_class()


# ----------------------------------------------------------------------------- checks
def choices_of(f: dataclasses.Field) -> tuple | None:
    """The choices of a field now (a registry's current entries), or None when any value goes."""
    choices = f.metadata.get("choices")
    return choices() if callable(choices) else choices


def flag_of(name: str) -> str:
    """The command-line flag of a field: ``--batch-size`` for ``batch_size``."""
    return "--" + name.replace("_", "-")


def check_fields(cfg: TrainConfig) -> None:
    """Every field finite, within its choices and its range, as a one-line :class:`LancetError` naming the flag.

    A NaN or infinite learning rate, decay or mixup alpha would otherwise train a NaN model (or fail
    deep inside the optimiser). Every field is checked from its metadata, so new settings are covered too.
    """
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        values = value if isinstance(value, (tuple, list)) else (value,)
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise LancetError(f"{flag_of(f.name)} {v}: must be a finite number")
        choices = choices_of(f)
        if choices is not None:
            for v in values:
                if v not in choices:
                    raise LancetError(f"{flag_of(f.name)} {v!r}: choose one of {', '.join(choices)}")
        valid = f.metadata.get("valid")
        if valid is not None and value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise LancetError(f"{flag_of(f.name)} {value!r}: must be a number")
            if value not in valid:
                raise LancetError(f"{flag_of(f.name)} {value}: must be {valid.describe()}")


# ----------------------------------------------------------------------------- the command line
def _flag_type(hint: Any) -> tuple[type, bool, bool]:
    """(item type, is a tuple, may be None) of a field's annotation."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = True, args[0]
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)[0], True, optional
    return (typing.get_origin(hint) or hint), False, optional


class Switch(argparse.Action):
    """A boolean setting with a flag for each value (``--class-weighted`` / ``--no-class-weighted``), so that
    a flag can override a value loaded from a run's config.json either way. The flag that changes the
    default comes first, and the help says what the default is and which flag changes it."""

    def __init__(self, option_strings: list[str], dest: str, default: bool = False, help: str = "", **kw: Any) -> None:
        name = option_strings[0].removeprefix("--")
        on, off = f"--{name}", f"--no-{name}"
        text = (f"turn off {help} (default: on, unless {off} is given)" if default
                else f"{help} (default: off, unless {on} is given)")
        super().__init__([off, on] if default else [on, off], dest, nargs=0, default=default, help=text)

    def __call__(self, parser, namespace, values, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, not (option_string or "").startswith("--no-"))

    def format_usage(self) -> str:
        return self.option_strings[0]


def build_parser(defaults: Mapping[str, Any] | None = None,
                 parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """One flag per :class:`TrainConfig` field (``--batch-size`` for ``batch_size``): type, default,
    choices and help all come from the field, so every default is written once, here.

    ``defaults`` overrides some of them (a script's path constants). Booleans get a :class:`Switch`:
    ``--class-weighted`` turns on what is off by default, ``--no-progress`` turns off what is on, and the
    opposite flag of each sets the default value back (over ``--config``).

    Example:
        >>> build_parser().parse_args(["--epochs", "3"]).epochs
        3
    """
    defaults = dict(defaults or {})
    unknown = set(defaults) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ValueError(f"no TrainConfig field(s) {', '.join(sorted(unknown))}")
    p = parser or argparse.ArgumentParser(formatter_class=HelpFormatter)
    hints = typing.get_type_hints(TrainConfig)
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        group = meta.get("group", "training")
        if group not in groups:
            groups[group] = p.add_argument_group(group)
        g = groups[group]
        default = defaults.get(f.name, _default(f))
        flag = flag_of(f.name)
        kind, is_tuple, _ = _flag_type(hints[f.name])
        help_text = meta.get("help", "")
        kw: dict[str, Any] = {"dest": f.name, "help": help_text() if callable(help_text) else help_text}
        if kind is bool:
            g.add_argument(flag, action=Switch, default=default, **kw)
            continue
        if kind is dict:  # KEY=VALUE items, parsed by config_from_args (they need the model names)
            g.add_argument(flag, nargs="*", default=[], metavar="KEY=VALUE", **kw)
            continue
        if "choices" in meta:
            kw["choices"] = choices_of(f)
        if is_tuple:
            kw["nargs"] = "+"
            default = list(default) if default is not None else None
        g.add_argument(flag, type=kind, default=default, **kw)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed :func:`build_parser` flags (model options checked by name)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    for name, value in values.items():
        if isinstance(value, list):
            values[name] = tuple(value)
    values["model_options"] = parse_model_options(list(values["model_options"]), values["models"])
    return TrainConfig(**values)
