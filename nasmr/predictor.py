"""Performance predictors: training protocol, evaluation, and save/load without training code.

Protocol. Architectures (not rows) are split per seed into train/validation/test
with expected fractions 70/10/20: each key (MR code, or nas-bench-201 ``ops``) is
placed by a hash of ``(seed, key)``, so an architecture lands in the same part in
every MR setting and the multi-task model is tested on the same architectures as
the per-setting ones. Weights are fitted on train, the epoch is chosen on
validation, and only test is reported: Kendall tau, Spearman, MAE and the
precision of the predicted top 10% (mean and sample std over seeds).

Two configurations are trained under that protocol:

* ``baseline``: the authors' predictor re-implemented (NAS-Bench-MR ``configs/*.yaml``):
  BatchNorm MLP on the embedding, 256-unit shared layer, one 128-unit head per metric
  group (seg ``[mIoU] [mAcc, aAcc] [flops, params]``, cls/video ``[top1] [top5]
  [flops, params]``, nas-bench-201 ``[Acc] [Flops, Params]``), SiLU, dropout 0.5
  (0 in the complexity head), Adam lr 1e-2 (weight decay 1e-7) with a one-cycle
  schedule, 200 epochs, batch 128, smooth-L1 on standardised targets, epoch chosen by
  the validation MAE of the first metric (their rule, on our validation split).
* ``default``: the same network and optimiser with what measurably helps on this data:
  the embedding plus differentiable complexity and structure features
  (``nasmr.features``), an ensemble of two members (predictions averaged), batch 256
  for 150 epochs. nas-bench-201 (``DEFAULT_NB201``) keeps the one-hot cell encoding,
  trains 100 epochs of batch 512 at lr 2e-2 and adds a pairwise logistic ranking loss
  on the accuracy, with the epoch chosen by validation Kendall tau.

``BRANCH_ATTENTION`` adds one self-attention layer over the code's branch tokens (one
per branch of each stage, plus stem and head), pooled and joined to the shared layer's
input so branches of different resolutions interact as the network's fusion layers
make them; one member, smooth-L1 with beta 0.13 plus the ranking loss on the primary
metric, Adam lr 3e-3 (weight decay 1e-4), 70 epochs of batch 256, epoch chosen by
validation Kendall tau. The multi-task predictor (``MULTITASK_CONFIG``) is that recipe
with one head per setting: on validation it beats the default MLP with one head per
setting on all eight MR settings. Per setting it stays an option, not the default: its
test tau on cls-10-1000 is not reliably above the baseline's (see docs/predictor-quality.md).

FLOPs and params targets are modelled in log space. A saved predictor is a
safetensors file plus a JSON card (``schemas.predictor.PredictorCard``) from which
:func:`load_predictor` rebuilds the network.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from scipy.stats import kendalltau, spearmanr
from torch import Tensor, nn

from nasmr import __version__, paths
from nasmr.complexity import analytic_complexity, nb201_complexity
from nasmr.features import (
    BRANCH_TOKENS,
    EMBEDDING_COLUMNS,
    MR_FEATURES,
    NB201_FEATURES,
    TOKEN_FIELDS,
    branch_tokens,
    embedding_tensor,
    mr_features,
    nb201_features,
    normalise,
)
from nasmr.parallel import pool_size
from nasmr.space import EMBEDDING_LENGTH, Arch, as_arch
from schemas.predictor import (
    CARD_FORMAT,
    COMPLEXITY_METRICS,
    MULTITASK,
    REPORT_SEEDS,
    AttentionSpec,
    FeatureSet,
    MetricScore,
    NetworkSpec,
    OutputSpec,
    PredictorCard,
    SplitSpec,
    TrainingSpec,
    saved_name,
)
from schemas.settings import MR_SETTINGS, get_setting

FRACTIONS = (0.7, 0.1, 0.2)
"""Expected train/validation/test fractions of the architectures."""

ATTENTION_HEADS = 4
"""Attention heads of the branch-token encoder."""

FEATURE_NAMES: dict[FeatureSet, tuple[str, ...]] = {
    "nb201-onehot": NB201_FEATURES,
    "embedding": EMBEDDING_COLUMNS,
    "embedding+structure": MR_FEATURES,
}
"""The input columns of each feature set, as a card lists them."""

SPLIT_RULE = (
    "int(sha256(f'{seed}/{key}').hexdigest()[:16], 16) / 2**64 against the cumulative "
    "fractions: train below the first, else val below the second, else test"
)

Progress = Callable[[int, int, str], None]
"""``progress(done, total, label)`` after each trained model."""


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` intra-op threads, then restore the previous count.

    These models are small: one thread is as fast as two on an idle machine, and two
    spin-waiting threads on a shared 2-core machine run about ten times slower.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class PredictorError(ValueError):
    """A predictor file or its inputs are unusable; the message names the file or field."""


# -- configurations ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Inputs, network, ensemble size, output grouping, optimisation and selection.

    The network is one ``trunk``-unit BatchNorm-SiLU layer and one ``head``-unit
    BatchNorm-SiLU head per output group, with ``dropout`` after each hidden layer (none
    in the complexity head); ``attention`` > 0 adds self-attention over the code's
    branch tokens at that width (MR only: nas-bench-201 predictors ignore it, as they
    ignore ``feature_set``). Adam uses ``weight_decay``, the loss is
    smooth-L1 with ``smooth_l1_beta`` on standardised targets.
    """

    model: Literal["default", "baseline"]
    feature_set: Literal["embedding", "embedding+structure"]
    trunk: int
    head: int
    attention: int
    dropout: float
    weight_decay: float
    smooth_l1_beta: float
    members: int
    grouping: Literal["authors", "by-setting"]
    epochs: int
    batch_size: int
    lr: float
    rank_weight: float
    rank_pairs: int
    selection: Literal["val-kendall", "val-loss"]
    eval_every: int

    def with_epochs(self, epochs: int | None) -> ModelConfig:
        """The same configuration with another epoch budget (None keeps it)."""
        return self if epochs is None else replace(self, epochs=epochs)


BASELINE = ModelConfig(
    model="baseline",
    feature_set="embedding",
    trunk=256,
    head=128,
    attention=0,
    dropout=0.5,
    weight_decay=1e-7,
    smooth_l1_beta=1.0,
    members=1,
    grouping="authors",
    epochs=200,
    batch_size=128,
    lr=1e-2,
    rank_weight=0.0,
    rank_pairs=0,
    selection="val-loss",
    eval_every=1,
)
"""The authors' predictor configuration (see the module docstring)."""

DEFAULT = replace(
    BASELINE,
    model="default",
    feature_set="embedding+structure",
    members=2,
    epochs=150,
    batch_size=256,
)
"""The default MR predictor: structure features, two members, larger batches, fewer epochs."""

BRANCH_ATTENTION = replace(
    DEFAULT,
    attention=64,
    members=1,
    epochs=70,
    lr=3e-3,
    weight_decay=1e-4,
    smooth_l1_beta=0.13,
    rank_weight=0.2,
    rank_pairs=2048,
    selection="val-kendall",
    eval_every=5,
)
"""The MR recipe with branch-token attention, one member (see the module docstring)."""

DEFAULT_NB201 = replace(
    BASELINE,
    model="default",
    epochs=100,
    batch_size=512,
    lr=2e-2,
    rank_weight=1 / 3,
    rank_pairs=2048,
    selection="val-kendall",
    eval_every=5,
)
"""The default nas-bench-201 predictor: larger batches and a pairwise ranking loss."""

MULTITASK_CONFIG = replace(BRANCH_ATTENTION, grouping="by-setting")
"""The multi-task predictor: the branch-attention recipe with one head per setting."""


def predictor_name(settings: Sequence[str]) -> str:
    """File name of the default predictor of ``settings``: the setting, or ``MULTITASK``."""
    return saved_name(settings[0], "default") if len(settings) == 1 else MULTITASK


def default_config(settings: Sequence[str]) -> ModelConfig:
    """The default configuration for a predictor of ``settings`` (several: multi-task)."""
    if len(settings) > 1:
        return MULTITASK_CONFIG
    return DEFAULT if get_setting(settings[0]).is_mr else DEFAULT_NB201


# -- splits and scores -------------------------------------------------------------------


def split_labels(keys: Sequence[str], seed: int) -> np.ndarray:
    """'train', 'val' or 'test' for each architecture key; depends only on (seed, key).

    The rule is ``SPLIT_RULE``, with ``FRACTIONS``, which every card records.
    """
    cuts = np.cumsum(FRACTIONS)[:2]
    u = np.array(
        [int(hashlib.sha256(f"{seed}/{k}".encode()).hexdigest()[:16], 16) / 2**64 for k in keys]
    )
    return np.where(u < cuts[0], "train", np.where(u < cuts[1], "val", "test"))


def _top_share(values: np.ndarray, k: int) -> np.ndarray:
    """Each value's chance of being among the ``k`` largest when ties are broken at random.

    Values above the k-th largest are in (1), values tied with it share the places left;
    NaN ranks last.
    """
    values = np.nan_to_num(values, nan=-np.inf)
    cut = np.sort(values)[::-1][k - 1]
    above, tied = values > cut, values == cut
    return np.where(above, 1.0, np.where(tied, (k - above.sum()) / tied.sum(), 0.0))


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Kendall tau-b, Spearman rho, MAE and precision of the predicted top 10%.

    Precision: the expected share of the predicted top k (k = 10% of the rows; predictions
    tied at the cut share the places left) whose true value reaches the k-th best. Published
    metrics are rounded and tie there, so row order must not decide; a perfect predictor
    scores 1.
    """
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    k = max(1, round(0.1 * len(y_true)))
    in_truth = y_true >= np.sort(y_true)[::-1][k - 1]
    return {
        "kendall": float(kendalltau(y_true, y_pred).statistic),
        "spearman": float(spearmanr(y_true, y_pred).statistic),
        "mae": float(np.mean(np.abs(y_true - y_pred))),
        "precision_at_10": float(np.dot(_top_share(y_pred, k), in_truth)) / k,
    }


# -- the network -------------------------------------------------------------------------


class _Dropout(nn.Module):
    """Inverted dropout, as ``nn.Dropout``, with the mask drawn from uniform samples.

    torch's CPU Bernoulli sampler is about four times slower than its uniform one, and
    at these layer sizes ``nn.Dropout`` took a fifth of a predictor's training time.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not self.p:
            return x
        return x * (torch.rand_like(x) >= self.p).to(x.dtype).mul_(1 / (1 - self.p))


def _hidden(width: int, hidden: int, dropout: float) -> list[nn.Module]:
    """Linear, BatchNorm, SiLU and (unless 0) dropout: the authors' hidden layer."""
    layers: list[nn.Module] = [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.SiLU()]
    return [*layers, _Dropout(dropout)] if dropout else layers


class _BranchAttention(nn.Module):
    """Self-attention over the branch tokens of normalised embeddings, mean- and max-pooled.

    Branches of different resolutions interact here, as the network's fusion layers
    make them do; the flat MLP input cannot express that as directly.
    """

    def __init__(self, spec: AttentionSpec) -> None:
        super().__init__()
        self.project = nn.Linear(TOKEN_FIELDS, spec.width)
        self.place = nn.Parameter(torch.randn(BRANCH_TOKENS, spec.width) * 0.1)
        layer = nn.TransformerEncoderLayer(
            spec.width, spec.heads, 2 * spec.width, spec.dropout, batch_first=True, norm_first=True
        )
        layer.dropout, layer.dropout1, layer.dropout2 = (_Dropout(spec.dropout) for _ in range(3))
        self.encoder = nn.TransformerEncoder(layer, spec.layers, enable_nested_tensor=False)

    def forward(self, z: Tensor) -> Tensor:
        h = self.encoder(self.project(branch_tokens(z)) + self.place)
        return torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=1)


class _Member(nn.Module):
    """One MLP: input BatchNorm, the shared layer, then one hidden-layer head per group.

    With attention, the pooled branch tokens join the normalised input of the shared layer.
    """

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        attention = spec.attention
        self.attention = _BranchAttention(attention) if attention else None
        width = spec.in_features + (2 * attention.width if attention else 0)
        self.trunk = nn.Sequential(
            nn.BatchNorm1d(spec.in_features), *_hidden(width, spec.trunk, spec.dropout)
        )
        self.heads = nn.ModuleList(
            nn.Sequential(*_hidden(spec.trunk, spec.head, dropout), nn.Linear(spec.head, len(g)))
            for g, dropout in zip(spec.groups, spec.head_dropout, strict=True)
        )

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        h = self.trunk[0](x)
        if self.attention is not None:
            h = torch.cat([h, self.attention(z)], dim=1)
        h = self.trunk[1:](h)
        return torch.cat([head(h) for head in self.heads], dim=1)


class PredictorNet(nn.Module):
    """Standardise the features, run every ensemble member: ``(members, n, outputs)``.

    The statistics come from the card, not the weights file, so they are not buffers.
    MR features begin with the normalised embedding, which attention reads unstandardised.
    """

    def __init__(self, spec: NetworkSpec, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.members = nn.ModuleList(_Member(spec) for _ in range(spec.members))
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)

    def forward(self, features: Tensor) -> Tensor:
        x = (features - self.mean.to(features.dtype)) / self.std.to(features.dtype)
        z = features[:, :EMBEDDING_LENGTH]
        return torch.stack([member(x, z) for member in self.members])


# -- the predictor -----------------------------------------------------------------------


def _features(feature_set: FeatureSet, inputs: Tensor) -> Tensor:
    """Network inputs from relaxed encodings (normalised MR embedding, or nb201 one-hot)."""
    return mr_features(inputs) if feature_set == "embedding+structure" else inputs


class Predictor:
    """A trained predictor: its card and network; predicts metrics and differentiates them."""

    def __init__(self, card: PredictorCard, net: PredictorNet) -> None:
        self.card = card
        self.net = net.eval()
        transforms = [o.transform for o in card.outputs]
        self._log = torch.tensor([t == "log" for t in transforms])
        self._mean = torch.tensor([o.mean for o in card.outputs], dtype=torch.float64)
        self._std = torch.tensor([o.std for o in card.outputs], dtype=torch.float64)

    @property
    def columns(self) -> list[str]:
        """Output columns, ``<setting>.<metric>`` (``flops``/``params`` for MR complexity)."""
        return [o.column for o in self.card.outputs]

    def encode(self, items: Sequence[Arch | str]) -> Tensor:
        """Relaxed encodings (float64) of architectures: normalised embeddings, or nb201 one-hot."""
        items = _items(items)
        if self.card.space == "nas-bench-201":
            return nb201_features([str(i) for i in items], torch.float64)
        return normalise(embedding_tensor([as_arch(i) for i in items], torch.float64))

    def forward(self, inputs: Tensor) -> Tensor:
        """Standardised predictions ``(n, outputs)`` (ensemble mean), differentiable in inputs.

        ``inputs`` are relaxed encodings as :meth:`encode` returns (normalised embedding in
        [0, 1] per position for MR predictors); any float dtype works.
        """
        dtype = next(self.net.parameters()).dtype
        return self.net(_features(self.card.feature_set, inputs).to(dtype)).mean(dim=0)

    def to_units(self, standardised: Tensor) -> Tensor:
        """Predictions in the metrics' own units (percent, GMac, M params)."""
        values = standardised * self._std.to(standardised) + self._mean.to(standardised)
        return torch.where(self._log, values.exp(), values)

    def predict(self, items: Sequence[Arch | str]) -> pd.DataFrame:
        """Predicted metrics of architectures (Arch or code; nas-bench-201: ``ops`` or arch string).

        The cost columns (``flops``/``params``, nas-bench-201's ``Flops``/``Params``) are the
        exact counts of ``nasmr.complexity``, in the benchmark's units: the model's own cost
        outputs (:meth:`to_units`), 3 to 12% off on average, up to 47% for a nas-bench-201
        cell, only help it train.
        """
        items = _items(items)  # read twice below: a generator would be empty the second time
        with torch.no_grad():
            values = self.to_units(self.forward(self.encode(items)).double())
        frame = pd.DataFrame(values.numpy(), columns=self.columns)
        costs = [o for o in self.card.outputs if o.metric in COMPLEXITY_METRICS]
        if costs:
            exact = _exact_costs(items, self.card.space)
            for output in costs:
                frame[output.column] = exact[output.metric]
        return frame

    def double(self) -> Predictor:
        """A float64 copy, for searches and scores that must not round to float32."""
        return Predictor(self.card, copy.deepcopy(self.net).double())

    def save(self, directory: Path) -> Path:
        """Write ``<name>.safetensors`` and ``<name>.json`` to ``directory``; return the card."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, directory / f"{self.card.name}.safetensors")
        card_path = directory / f"{self.card.name}.json"
        card_path.write_text(self.card.model_dump_json(indent=2) + "\n")
        return card_path


def _items(items: Iterable[Arch | str]) -> list[Arch | str]:
    """The architectures or codes to predict, as a list; one alone is an error (a string's
    characters would be read as codes)."""
    if isinstance(items, str | Arch):
        raise TypeError(f"predict takes a list of architectures or codes: [{items!r}]")
    return list(items)


def _exact_costs(items: Sequence[Arch | str], space: str) -> dict[str, list[float]]:
    """The exact costs of architectures by metric name, as the benchmark publishes them."""
    if space == "nas-bench-201":
        cells = [nb201_complexity(str(i)) for i in items]
        return {"Flops": [c.macs / 1e6 for c in cells], "Params": [c.params / 1e6 for c in cells]}
    counts = [analytic_complexity(i) for i in items]
    return {"flops": [c.gmac for c in counts], "params": [c.mparams for c in counts]}


def _card_format(text: str) -> object:
    """The ``format`` a card's JSON declares, or None if it is not a JSON object."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data.get("format") if isinstance(data, dict) else None


def _cards(folder: Path) -> str:
    """The predictor cards in ``folder`` (``<name>.json`` beside ``<name>.safetensors``), said
    for an error."""
    cards = sorted(p.name for p in folder.glob("*.json") if p.with_suffix(".safetensors").is_file())
    if not cards:
        return f"{folder} holds no predictor card (<name>.json beside <name>.safetensors)"
    return f"e.g. {folder / cards[0]}; cards there: {', '.join(cards)}"


def load_predictor(path: Path) -> Predictor:
    """Rebuild a saved predictor from its card and weights (``.json``, ``.safetensors`` or stem)."""
    path = Path(path)
    if path.is_dir():
        raise PredictorError(f"{path} is a folder: pass one predictor's card file, {_cards(path)}")
    # strip the suffix by name: Path.with_suffix would also cut the ".baseline" of seg.baseline
    name = path.name.removesuffix(".json").removesuffix(".safetensors")
    card_path, weights_path = path.with_name(f"{name}.json"), path.with_name(f"{name}.safetensors")
    for p in (card_path, weights_path):
        if not p.is_file():
            found = f"; {_cards(p.parent)}" if p.parent.is_dir() else ""
            raise FileNotFoundError(f"{p}: predictor file not found{found}")
    try:
        text = card_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        message = f"{card_path}: invalid predictor card: not UTF-8 text ({err})"
        raise PredictorError(message) from err
    try:
        card = PredictorCard.model_validate_json(text)
    except ValidationError as err:
        written = _card_format(text)
        if written is not None and written != CARD_FORMAT:
            raise PredictorError(
                f"{card_path}: predictor card format {written}, this nasmr reads format "
                f"{CARD_FORMAT}: retrain (`nasmr predictor train` or `nasmr build --job refresh`)"
            ) from err
        raise PredictorError(f"{card_path}: invalid predictor card: {err}") from err
    if card.features != FEATURE_NAMES[card.feature_set]:
        raise PredictorError(
            f"{card_path}: invalid predictor card: features are not the "
            f"{len(FEATURE_NAMES[card.feature_set])} columns of feature_set {card.feature_set}"
        )
    with torch.random.fork_rng(devices=[]):  # its initial weights are overwritten below
        net = PredictorNet(card.network, card.feature_mean, card.feature_std)
    try:
        state = load_file(weights_path)
    except SafetensorError as err:
        raise PredictorError(f"{weights_path}: not a safetensors file: {err}") from err
    broken = [k for k, v in state.items() if not torch.isfinite(v).all()]
    if broken:
        raise PredictorError(f"{weights_path}: non-finite values in tensor(s) {broken}")
    try:
        net.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as err:
        message = f"{weights_path}: weights do not match {card_path.name}: {err}"
        raise PredictorError(message) from err
    return Predictor(card, net)


# -- training data -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Data:
    """Keys, relaxed inputs and transformed targets (NaN where a setting lacks the key)."""

    space: Literal["nasbench-mr", "nas-bench-201"]
    key: Literal["code", "ops"]
    keys: list[str]
    inputs: Tensor
    columns: list[tuple[str, str | None, str]]
    targets: np.ndarray


def _data(frames: Mapping[str, pd.DataFrame], settings: Sequence[str]) -> _Data:
    """Join the settings' frames on the architecture key; targets in model space (log or not)."""
    space = get_setting(settings[0]).space
    key: Literal["code", "ops"] = "code" if space == "nasbench-mr" else "ops"
    parts, columns = [], []
    for setting in settings:
        frame = frames[setting]
        required = [key, *get_setting(setting).metrics]
        required += ["flops", "params"] if space == "nasbench-mr" else []
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise PredictorError(f"frame of setting {setting!r} lacks column(s) {missing}")
        metrics = list(get_setting(setting).metrics)
        part = frame.set_index(key)[metrics].rename(columns=lambda m, s=setting: f"{s}.{m}")
        parts.append(part)
        columns += [(f"{setting}.{m}", setting, m) for m in metrics]
    if space == "nasbench-mr":
        complexity = pd.concat([frames[s].set_index(key)[["flops", "params"]] for s in settings])
        parts.append(complexity[~complexity.index.duplicated()])
        columns += [("flops", None, "flops"), ("params", None, "params")]
    joined = pd.concat(parts, axis=1, join="outer").sort_index()
    keys = [str(k) for k in joined.index]
    if space == "nasbench-mr":
        inputs = normalise(embedding_tensor([Arch.from_code(k) for k in keys]))
    else:
        inputs = nb201_features(keys)
    targets = joined[[c for c, _, _ in columns]].to_numpy(dtype=float, copy=True)
    for j, (_, _, metric) in enumerate(columns):
        if metric in COMPLEXITY_METRICS:
            targets[:, j] = np.log(targets[:, j])
    return _Data(space, key, keys, inputs, columns, targets)


def _groups(
    config: ModelConfig, columns: list[tuple[str, str | None, str]]
) -> list[tuple[str, ...]]:
    """Output groups, one head each (see the module docstring for the authors' grouping)."""
    complexity = tuple(c for c, _, m in columns if m in COMPLEXITY_METRICS)
    groups: list[tuple[str, ...]] = []
    for setting in dict.fromkeys(s for _, s, _ in columns if s is not None):
        metrics = [(c, m) for c, s, m in columns if s == setting and m not in COMPLEXITY_METRICS]
        primary = get_setting(setting).primary_metric
        if config.grouping == "authors":
            groups.append(tuple(c for c, m in metrics if m == primary))
            others = tuple(c for c, m in metrics if m != primary)
            groups += [others] if others else []
        else:
            groups.append(tuple(c for c, _ in metrics))
    return [*groups, complexity]


# -- training ----------------------------------------------------------------------------


def _pairwise_loss(pred: Tensor, target: Tensor, pairs: int, generator: torch.Generator) -> Tensor:
    """Logistic loss on random pairs for ordering ``pred`` (members, n) like ``target`` (n)."""
    n = target.shape[0]
    i = torch.randint(0, n, (pairs,), generator=generator)
    j = torch.randint(0, n, (pairs,), generator=generator)
    sign = torch.sign(target[i] - target[j])
    return nn.functional.softplus(-sign * (pred[:, i] - pred[:, j]) * 4.0).mean()


def _mean_kendall(pred: np.ndarray, target: np.ndarray) -> float:
    values = []
    for j in range(target.shape[1]):
        ok = ~np.isnan(target[:, j])
        values.append(kendalltau(pred[ok, j], target[ok, j]).statistic)
    return float(np.mean(values))


def _fit(
    net: PredictorNet,
    x: Tensor,
    y: Tensor,
    train: np.ndarray,
    val: np.ndarray,
    config: ModelConfig,
    primary: list[int],
    generator: torch.Generator,
) -> int:
    """Train ``net`` in place on rows ``train``; keep the state of the best validation epoch."""
    optimizer = torch.optim.Adam(
        net.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
    )
    batch = config.batch_size
    per_epoch = math.ceil(len(train) / batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=config.lr,
        total_steps=config.epochs * per_epoch,
        pct_start=0.3,
        div_factor=10,
        base_momentum=0.85,
        max_momentum=0.95,
    )
    x_val, y_val = x[val], y[val].numpy()
    mask = ~torch.isnan(y)
    y0 = torch.nan_to_num(y)
    best_score, best_state, best_epoch = -math.inf, copy.deepcopy(net.state_dict()), 0
    for epoch in range(config.epochs):
        net.train()
        order = train[torch.randperm(len(train), generator=generator).numpy()]
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            if len(rows) < 2:
                continue  # BatchNorm needs two rows
            pred = net(x[rows])
            err = nn.functional.smooth_l1_loss(
                pred, y0[rows].expand_as(pred), reduction="none", beta=config.smooth_l1_beta
            )
            m = mask[rows].expand_as(pred)
            per_output = (err * m).sum(dim=(0, 1)) / m.sum(dim=(0, 1)).clamp_min(1)
            loss = per_output.mean()
            for j in primary if config.rank_weight else []:
                ok = mask[rows, j]
                if ok.sum() < 2:
                    continue  # no pair to order: a setting without results for these rows
                loss = loss + config.rank_weight * _pairwise_loss(
                    pred[:, ok, j], y0[rows][ok, j], config.rank_pairs, generator
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        if (epoch + 1) % config.eval_every and epoch + 1 != config.epochs:
            continue
        net.eval()
        with torch.no_grad():
            pred_val = net(x_val).mean(dim=0).numpy()
        if config.selection == "val-kendall":
            score = _mean_kendall(pred_val[:, primary], y_val[:, primary])
        else:
            first = primary[0]
            ok = ~np.isnan(y_val[:, first])
            score = -float(np.mean(np.abs(pred_val[ok, first] - y_val[ok, first])))
        if score > best_score:
            best_score, best_state, best_epoch = score, copy.deepcopy(net.state_dict()), epoch
    net.load_state_dict(best_state)
    net.eval()
    return best_epoch


def _check_split(
    data: _Data, parts: Mapping[str, np.ndarray], primaries: set[str], seed: int
) -> None:
    """Refuse a split that cannot train or score: a primary metric needs 2 distinct values
    in each part, and every output a value in the train part (its scale)."""
    for j, (column, _, _) in enumerate(data.columns):
        for part, rows in parts.items():
            known = data.targets[rows, j][~np.isnan(data.targets[rows, j])]
            if column in primaries and len(np.unique(known)) < 2:
                raise PredictorError(
                    f"split seed {seed}: {column} has {len(known)} {part} architectures with "
                    f"{len(np.unique(known))} distinct values; selecting and scoring a predictor "
                    "needs at least 2 in each of train, val and test"
                )
        if np.isnan(data.targets[parts["train"], j]).all():
            raise PredictorError(
                f"split seed {seed}: {column} has no value in the train split, so its output "
                "has no scale to learn"
            )


def train_predictor(
    frames: Mapping[str, pd.DataFrame],
    settings: Sequence[str],
    config: ModelConfig | None = None,
    seed: int = 0,
    data_version: str = "unversioned",
    report_seeds: Sequence[int] = (0,),
    name: str | None = None,
) -> Predictor:
    """Train one predictor on split ``seed`` for ``settings`` (several: multi-task).

    ``frames`` maps each setting to its rows: ``code``, the setting's metrics, ``flops``
    and ``params`` (MR), or ``ops`` and the metrics (nas-bench-201). ``config`` defaults to
    :func:`default_config`. The card records the validation and test scores of
    this seed.
    """
    if not settings:
        raise PredictorError("no settings to train on")
    config = config or default_config(settings)
    spaces = {get_setting(s).space for s in settings}
    if len(spaces) != 1 or (len(settings) > 1 and "nas-bench-201" in spaces):
        raise PredictorError(f"settings {list(settings)} mix spaces; multi-task is MR only")
    data = _data(frames, settings)
    labels = split_labels(data.keys, seed)
    parts = {p: np.flatnonzero(labels == p) for p in ("train", "val", "test")}
    primaries = {f"{s}.{get_setting(s).primary_metric}" for s in settings}
    _check_split(data, parts, primaries, seed)
    feature_set: FeatureSet = (
        "nb201-onehot" if data.space == "nas-bench-201" else config.feature_set
    )
    if config.attention and data.space != "nasbench-mr":
        config = replace(config, attention=0)
    with torch.no_grad():
        x = _features(feature_set, data.inputs.double()).float()
    x_train = x[parts["train"]]
    feature_mean = x_train.mean(dim=0)
    feature_std = x_train.std(dim=0).clamp_min(1e-6)

    train_targets = data.targets[parts["train"]]
    mean, std = np.nanmean(train_targets, axis=0), np.nanstd(train_targets, axis=0)
    std = np.where(std > 0, std, 1.0)
    groups = _groups(config, data.columns)
    order = [c for g in groups for c in g]
    index = {c: j for j, (c, _, _) in enumerate(data.columns)}
    outputs = tuple(
        OutputSpec(
            column=c,
            setting=data.columns[index[c]][1],
            metric=data.columns[index[c]][2],
            transform="log" if data.columns[index[c]][2] in COMPLEXITY_METRICS else "identity",
            mean=float(mean[index[c]]),
            std=float(std[index[c]]),
            ranked=bool(config.rank_weight) and c in primaries,
        )
        for c in order
    )
    cols = [index[c] for c in order]
    y = torch.tensor((data.targets[:, cols] - mean[cols]) / std[cols], dtype=torch.float32)
    primary = [j for j, c in enumerate(order) if c in primaries]
    spec = NetworkSpec(
        members=config.members,
        in_features=x.shape[1],
        trunk=config.trunk,
        head=config.head,
        groups=tuple(groups),
        dropout=config.dropout,
        head_dropout=tuple(
            0.0 if all(c.split(".")[-1] in COMPLEXITY_METRICS for c in g) else config.dropout
            for g in groups
        ),
        attention=(
            AttentionSpec(width=config.attention, heads=ATTENTION_HEADS, layers=1, dropout=0.1)
            if config.attention
            else None
        ),
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = PredictorNet(spec, feature_mean.tolist(), feature_std.tolist())
        epoch = _fit(net, x, y, parts["train"], parts["val"], config, primary, generator)

    card = PredictorCard(
        name=name or predictor_name(settings),
        model=config.model,
        kind="per-setting" if len(settings) == 1 else "multi-task",
        space=data.space,
        settings=tuple(settings),
        data_version=data_version,
        nasmr_version=__version__,
        feature_set=feature_set,
        features=FEATURE_NAMES[feature_set],
        feature_mean=tuple(feature_mean.tolist()),
        feature_std=tuple(feature_std.tolist()),
        outputs=outputs,
        network=spec,
        training=TrainingSpec(
            epochs=config.epochs,
            batch_size=config.batch_size,
            lr=config.lr,
            weight_decay=config.weight_decay,
            smooth_l1_beta=config.smooth_l1_beta,
            loss="smooth-l1" + (" + pairwise logistic" if config.rank_weight else ""),
            rank_weight=config.rank_weight,
            selection=config.selection,
            selected_epoch=epoch,
            seed=seed,
        ),
        split=SplitSpec(
            key=data.key,
            seed=seed,
            fractions=FRACTIONS,
            rule=SPLIT_RULE,
            n_train=len(parts["train"]),
            n_val=len(parts["val"]),
            n_test=len(parts["test"]),
        ),
        report_seeds=tuple(report_seeds),
        test_metrics=(),
    )
    predictor = Predictor(card, net)
    predictor.card = card.model_copy(
        update={
            "val_metrics": _scores_on(predictor, data, parts["val"]),
            "test_metrics": _scores_on(predictor, data, parts["test"]),
        }
    )
    return predictor


def _scores_on(predictor: Predictor, data: _Data, rows: np.ndarray) -> tuple[MetricScore, ...]:
    """Scores of every output on ``rows``, in the metrics' own units."""
    with torch.no_grad():
        pred = predictor.to_units(predictor.forward(data.inputs[rows].double())).double().numpy()
    index = {c: j for j, (c, _, _) in enumerate(data.columns)}
    out = []
    for j, spec in enumerate(predictor.card.outputs):
        truth = data.targets[rows, index[spec.column]]
        truth = np.exp(truth) if spec.transform == "log" else truth
        ok = ~np.isnan(truth)
        out.append(MetricScore(column=spec.column, **scores(truth[ok], pred[ok, j])))
    return tuple(out)


# -- everything the pipeline needs ---------------------------------------------------------


STATS = ("mean", "std")
REPORT_COLUMNS = [
    "setting",
    "metric",
    "model",
    "primary",
    "seeds",
    *(f"{s}_{a}" for s in ("kendall", "spearman", "mae", "precision_at_10") for a in STATS),
]


def _report_rows(
    runs: list[tuple[str, Predictor]], settings: Sequence[str]
) -> list[dict[str, object]]:
    """Mean and sample std over seeds of each (setting, metric, model)."""
    collected: dict[tuple[str, str, str], list[MetricScore]] = {}
    for model, predictor in runs:
        for score in predictor.card.test_metrics:
            spec = next(o for o in predictor.card.outputs if o.column == score.column)
            owners = [spec.setting] if spec.setting else list(predictor.card.settings)
            for setting in owners:
                if setting in settings:
                    collected.setdefault((setting, spec.metric, model), []).append(score)
    rows = []
    for (setting, metric, model), values in collected.items():
        row: dict[str, object] = {
            "setting": setting,
            "metric": metric,
            "model": model,
            "primary": metric == get_setting(setting).primary_metric,
            "seeds": len(values),
        }
        for stat in ("kendall", "spearman", "mae", "precision_at_10"):
            v = np.array([getattr(s, stat) for s in values])
            row[f"{stat}_mean"] = float(v.mean())
            row[f"{stat}_std"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
        rows.append(row)
    return rows


REPORT_NOTES = (
    "Notes. Bold: each setting's primary metric. Kendall tau is tau-b (scipy); Spearman "
    "gives tied values their mean rank. MAE is in the metric's own unit: percentage points "
    "for accuracies and mIoU, GMac for MR `flops` and millions for MR `params` (every MR "
    "setting gives those of the same network: the 50-class classification one on a "
    "128x128 input), MFLOPs and millions for nas-bench-201 `Flops` and `Params`. "
    "precision@10% is the share of the predicted top 10% whose true value reaches the "
    "true top 10% (published metrics are rounded: an architecture tied with the 10%-th "
    "best counts as in; predictions tied at the cut share the places left). A seed sets "
    "both the split and the initialisation. The multi-task model predicts `flops` and "
    "`params` with one head shared by every setting, so its rows for them repeat under "
    "each setting."
)
"""What the report's columns mean, written under its table."""


def _mean_std(mean: float, std: float) -> str:
    """``mean ± std`` to three decimals; the mean alone when there is no std (one seed)."""
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def report_markdown(report: pd.DataFrame, data_version: str) -> str:
    """The report as markdown: protocol, then one table row per setting, metric and model."""
    seeds = int(report["seeds"].max()) if len(report) else 0
    spread = f"mean ± sample std over {seeds} seeds" if seeds > 1 else "one seed, so no std"
    lines = [
        "# Predictor report",
        "",
        f"Data version `{data_version}`. Architectures split by key into train/val/test "
        f"(expected {FRACTIONS[0]:.0%}/{FRACTIONS[1]:.0%}/{FRACTIONS[2]:.0%}), epoch chosen "
        f"on validation, scores on test; {spread}. "
        "`baseline`: the authors' MLP configuration; `default`: this project's predictor; "
        "`multitask`: one trunk with branch-token attention and a head per MR setting.",
        "",
        "| setting | metric | model | Kendall tau | Spearman | MAE | precision@10% |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report.itertuples():
        cells = [
            _mean_std(getattr(row, f"{s}_mean"), getattr(row, f"{s}_std"))
            for s in ("kendall", "spearman", "mae", "precision_at_10")
        ]
        metric = f"**{row.metric}**" if row.primary else row.metric
        lines.append(f"| {row.setting} | {metric} | {row.model} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", REPORT_NOTES]) + "\n"


@dataclass(frozen=True)
class _Job:
    """One training of :func:`train_all`, self-contained so a worker process can run it."""

    frames: dict[str, pd.DataFrame]
    settings: list[str]
    config: ModelConfig
    seed: int
    data_version: str
    report_seeds: tuple[int, ...]
    name: str


def _run(job: _Job) -> Predictor:
    with torch_threads(1):
        return train_predictor(
            job.frames,
            job.settings,
            job.config,
            job.seed,
            job.data_version,
            job.report_seeds,
            job.name,
        )


def train_all(
    frames: Mapping[str, pd.DataFrame],
    out_dir: Path,
    seeds: Sequence[int] = tuple(range(REPORT_SEEDS)),
    data_version: str = "unversioned",
    epochs: int | None = None,
    progress: Progress | None = None,
    workers: int | None = 1,
) -> pd.DataFrame:
    """Train and evaluate every predictor the pipeline publishes; return the report.

    For each setting in ``frames``: the default and the baseline predictor on every seed;
    with two or more MR settings, also the multi-task default predictor. The first seed's
    models are saved in ``out_dir`` (``<setting>``, ``<setting>.baseline``, ``multitask``,
    as safetensors + JSON card) beside ``report.csv`` and ``report.md``. ``epochs``
    overrides every configuration's epoch budget (quick runs). Each training uses one
    torch thread; ``workers`` > 1 (None: the CPU count) runs trainings in that many
    processes, with the same results. An ``out_dir`` in a published release is refused.
    """
    out_dir = paths.outside_releases(out_dir)
    seeds = tuple(seeds)
    if not seeds:
        raise PredictorError("at least one seed is needed")
    settings = [s for s in frames if len(frames[s])]
    mr = [s for s in MR_SETTINGS if s in settings]
    plan: list[tuple[list[str], ModelConfig, str]] = []
    for setting in settings:
        plan.append(([setting], default_config([setting]), saved_name(setting, "default")))
        plan.append(([setting], BASELINE, saved_name(setting, "baseline")))
    if len(mr) > 1:
        plan.append((mr, MULTITASK_CONFIG, MULTITASK))
    jobs = [
        _Job(
            {s: frames[s] for s in names},
            names,
            config.with_epochs(epochs),
            seed,
            data_version,
            seeds,
            name,
        )
        for names, config, name in plan
        for seed in seeds
    ]
    results: dict[int, Predictor] = {}

    def collect(index: int, predictor: Predictor) -> None:
        results[index] = predictor
        if progress is not None:
            progress(len(results), len(jobs), f"{jobs[index].name} seed {jobs[index].seed}")

    workers = pool_size(workers, len(jobs))
    if workers == 1:
        for index, job in enumerate(jobs):
            collect(index, _run(job))
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_run, job): index for index, job in enumerate(jobs)}
            for future in as_completed(futures):
                collect(futures[future], future.result())
    runs = []
    for index, job in enumerate(jobs):
        predictor = results[index]
        if job.seed == seeds[0]:
            predictor.save(out_dir)
        runs.append((MULTITASK if job.name == MULTITASK else job.config.model, predictor))
    report = pd.DataFrame(_report_rows(runs, settings), columns=REPORT_COLUMNS)
    order = {s: i for i, s in enumerate(settings)}
    report = report.sort_values(
        ["setting", "primary", "metric", "model"],
        key=lambda c: c.map(order) if c.name == "setting" else c,
        ascending=[True, False, True, True],
    ).reset_index(drop=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    report.to_csv(out_dir / "report.csv", index=False)
    (out_dir / "report.md").write_text(report_markdown(report, data_version))
    return report
