"""The card of a saved performance predictor: everything needed to rebuild and judge it.

A predictor is saved as ``<name>.safetensors`` (weights) beside ``<name>.json`` (this
card). The card alone rebuilds the network (``network``), its inputs (``features``
and the input statistics) and its outputs (``outputs``, with each target's transform
and standardisation), and records how it was trained and evaluated (split, seeds,
data version, test metrics).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, FiniteFloat, model_validator

from schemas.settings import PREDICTOR_SETTINGS, get_setting

MULTITASK = "multitask"
"""File name and report label of the multi-task predictor (one head per MR setting)."""

REPORT_SEEDS = 5
"""Split (and initialisation) seeds 0..4 of the full report, by default."""

SAVED_MODELS = ("default", "baseline", MULTITASK)
"""The predictors a build saves for a setting (multi-task: MR settings only)."""


def saved_name(setting: str, model: str) -> str:
    """File name of the saved ``model`` (one of ``SAVED_MODELS``) that predicts ``setting``."""
    return {"default": setting, "baseline": f"{setting}.baseline", MULTITASK: MULTITASK}[model]


CARD_FORMAT = 2
"""Version of the card layout; a loader refuses cards of another format."""

COMPLEXITY_METRICS = frozenset({"flops", "params", "Flops", "Params"})
"""Targets modelled in log space and grouped in their own head."""

MR_COMPLEXITY = ("flops", "params")
"""The setting-independent outputs of every MR predictor, in card order."""

Space = Literal["nasbench-mr", "nas-bench-201"]
FeatureSet = Literal["embedding", "embedding+structure", "nb201-onehot"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OutputSpec(_Frozen):
    """One predicted quantity: column ``<setting>.<metric>`` (or ``flops``/``params``)."""

    column: str
    setting: str | None = Field(description="None for the setting-independent flops/params")
    metric: str
    transform: Literal["identity", "log"] = Field(description="applied before standardising")
    mean: FiniteFloat = Field(description="mean of the transformed target on the training split")
    std: FiniteFloat = Field(
        gt=0, description="std of the transformed target on the training split"
    )
    ranked: bool = Field(description="whether a pairwise ranking loss trained this output")


class AttentionSpec(_Frozen):
    """Self-attention over the branch tokens of the code (``nasmr.features.branch_tokens``).

    Each token is projected to ``width`` units plus a learned embedding of its place,
    then runs through ``layers`` pre-norm transformer encoder layers (feed-forward of
    twice the width, ReLU); the tokens' mean and max join the shared layer's input.
    """

    width: int = Field(ge=1)
    heads: int = Field(ge=1)
    layers: int = Field(ge=1)
    dropout: float = Field(ge=0, lt=1, description="dropout inside the encoder layers")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> AttentionSpec:
        if self.width % self.heads:
            raise ValueError(
                f"attention width {self.width} is not a multiple of {self.heads} heads"
            )
        return self


class NetworkSpec(_Frozen):
    """An ensemble of BatchNorm MLPs: input BatchNorm, a shared layer, one head per group.

    Each hidden layer is Linear, BatchNorm, SiLU and dropout; a head is one hidden layer
    and a linear output for its group's columns. With ``attention``, the pooled branch
    tokens are concatenated to the normalised input of the shared layer.
    """

    members: int = Field(ge=1)
    in_features: int = Field(ge=1)
    trunk: int = Field(ge=1, description="units of the shared layer")
    head: int = Field(ge=1, description="units of each head's hidden layer")
    groups: tuple[tuple[str, ...], ...] = Field(description="output columns of each head")
    dropout: float = Field(ge=0, lt=1, description="dropout after the shared layer")
    head_dropout: tuple[float, ...]
    activation: Literal["silu"] = "silu"
    attention: AttentionSpec | None = Field(
        default=None, description="branch-token self-attention (MR inputs only), or none"
    )


class TrainingSpec(_Frozen):
    """Optimisation and model selection of one training run."""

    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=2)
    optimizer: Literal["adam"] = "adam"
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    schedule: Literal["one-cycle"] = "one-cycle"
    smooth_l1_beta: float = Field(
        default=1.0, gt=0, description="where smooth-L1 turns from quadratic to linear"
    )
    loss: str
    rank_weight: float = Field(ge=0)
    selection: Literal["val-kendall", "val-loss"] = Field(
        description="val-kendall: best mean Kendall tau of the primary metrics on validation; "
        "val-loss: lowest MAE of the first primary metric (standardised) on validation "
        "(the authors' rule; the name is kept for saved cards)"
    )
    selected_epoch: int = Field(
        ge=0, description="the epoch whose weights were kept, counted from 0"
    )
    seed: int


class SplitSpec(_Frozen):
    """How architectures were assigned to train/validation/test (by key, not by row)."""

    key: Literal["code", "ops"]
    seed: int
    fractions: tuple[float, float, float]
    rule: str
    n_train: int
    n_val: int
    n_test: int


Score = Annotated[float, BeforeValidator(lambda v: math.nan if v is None else v)]
"""A score, NaN where undefined (a constant truth or prediction), which JSON writes as null."""


class MetricScore(_Frozen):
    """Test-split quality of one output."""

    column: str
    kendall: Score
    spearman: Score
    mae: Score
    precision_at_10: Score


class PredictorCard(_Frozen):
    """Metadata of a saved predictor (the JSON next to its safetensors weights)."""

    format: Literal[2] = CARD_FORMAT
    name: str
    model: Literal["default", "baseline"]
    kind: Literal["per-setting", "multi-task"]
    space: Space
    settings: tuple[str, ...]
    data_version: str
    nasmr_version: str
    feature_set: FeatureSet
    features: tuple[str, ...]
    feature_mean: tuple[FiniteFloat, ...]
    feature_std: tuple[Annotated[FiniteFloat, Field(gt=0)], ...]
    outputs: tuple[OutputSpec, ...]
    network: NetworkSpec
    training: TrainingSpec
    split: SplitSpec
    report_seeds: tuple[int, ...] = Field(
        description="split seeds of the report this model belongs to; the model is the first one's"
    )
    val_metrics: tuple[MetricScore, ...] = Field(
        default=(), description="scores on the validation split, the only ones tuning may use"
    )
    test_metrics: tuple[MetricScore, ...]

    @model_validator(mode="after")
    def _attention_reads_mr_codes(self) -> PredictorCard:
        if self.network.attention is not None and self.space != "nasbench-mr":
            raise ValueError(f"network.attention reads MR branch tokens; space is {self.space}")
        return self

    @model_validator(mode="after")
    def _parts_agree(self) -> PredictorCard:
        """Inputs, network and outputs describe one model: an edited card fails here, by field,
        not later as a shape error or as predictions under another output's name."""
        if (self.feature_set == "nb201-onehot") != (self.space == "nas-bench-201"):
            raise ValueError(f"feature_set {self.feature_set} does not read space {self.space}")
        sizes = {
            "features": len(self.features),
            "feature_mean": len(self.feature_mean),
            "feature_std": len(self.feature_std),
        }
        if set(sizes.values()) != {self.network.in_features}:
            raise ValueError(f"network.in_features is {self.network.in_features}, but {sizes}")
        network = self.network
        if len(network.head_dropout) != len(network.groups):
            raise ValueError(
                f"network.head_dropout has {len(network.head_dropout)} values for "
                f"{len(network.groups)} groups"
            )
        grouped = [column for group in network.groups for column in group]
        columns = [o.column for o in self.outputs]
        if grouped != columns:
            raise ValueError(f"network.groups hold {grouped}, but outputs are {columns}")
        for o in self.outputs:
            if o.column != (f"{o.setting}.{o.metric}" if o.setting else o.metric):
                raise ValueError(f"output {o.column!r} has setting {o.setting}, metric {o.metric}")
            if o.setting is not None and o.setting not in self.settings:
                raise ValueError(f"output {o.column!r} is of no setting in {list(self.settings)}")
            if (o.transform == "log") != (o.metric in COMPLEXITY_METRICS):
                raise ValueError(f"output {o.column!r}: transform {o.transform} is not its own")
        unknown = [s for s in self.settings if s not in PREDICTOR_SETTINGS]
        if unknown:
            raise ValueError(
                f"settings {unknown}: predictors are of {', '.join(PREDICTOR_SETTINGS)}"
            )
        for setting in self.settings:  # a relabelled or reordered output would mislabel values
            metrics = [o.metric for o in self.outputs if o.setting == setting]
            expected = list(get_setting(setting).metrics)
            if metrics != expected:
                raise ValueError(f"outputs of {setting} are {metrics}; its metrics are {expected}")
        shared = [o.metric for o in self.outputs if o.setting is None]
        expected = list(MR_COMPLEXITY) if self.space == "nasbench-mr" else []
        if shared != expected:
            raise ValueError(f"outputs of no setting are {shared}; {self.space} has {expected}")
        return self
