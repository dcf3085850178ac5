"""pydantic contracts of the raw drop's result records, one model per kind of setting.

A record is one dict of a ``trainval.pkl`` list. Validation checks types, finite
values, ranges and, for NAS-Bench-MR records, that the three encodings of the
architecture (``embedding``; ``input_channel`` + ``inverted_residual_setting`` +
``last_channel``) describe the same network. :func:`describe_errors` turns a
validation failure into ``(field, reason)`` pairs for the quarantine table.

The imports from the domain library are ``nasmr.space``, the definition of the
architecture space, and the closed-form count of ``nasmr.complexity`` (pure Python, no
other dependency), which bounds the published FLOPs and params: both are part of the contract.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nasmr.complexity import LARGEST
from nasmr.shown import cut, shown
from nasmr.space import CHANNELS, Arch, ArchError
from schemas.nb201 import NB201_EDGES, NB201_OPS, arch_str
from schemas.settings import Task, get_setting


def _not_a_bool(value: Any) -> Any:
    """NumPy's bool passes ``StrictFloat`` (it converts to float); like Python's, it is not
    a number."""
    if isinstance(value, np.bool_):
        raise ValueError(f"a boolean is not a number (got {value!r})")
    return value


Percent = Annotated[
    StrictFloat, Field(ge=0, le=100, allow_inf_nan=False), BeforeValidator(_not_a_bool)
]
"""A finite percentage in [0, 100] (an int is accepted, a string or bool is not)."""

Positive = Annotated[StrictFloat, Field(gt=0, allow_inf_nan=False), BeforeValidator(_not_a_bool)]
"""A finite, strictly positive number (FLOPs, params)."""

MAX_ITEMS = 64
"""Most items any list of a record, or a record itself, may hold (the drop needs 30): a
longer one is refused whole, not item by item, so a small file cannot make a million
errors (a list of memo references to one bad value)."""


def _few_items(value: Any) -> Any:
    """A list, tuple or array longer than :data:`MAX_ITEMS` is refused before its items are
    validated (pydantic checks ``max_length`` after them)."""
    if isinstance(value, np.ndarray):
        size = value.size
    elif isinstance(value, list | tuple):
        size = len(value)
    else:
        return value
    if size > MAX_ITEMS:
        raise ValueError(f"{size} items, more than {MAX_ITEMS}")
    return value


Bounded = BeforeValidator(_few_items)

Ints = Annotated[list[StrictInt], Field(fail_fast=True), Bounded]
"""A bounded list of ints whose validation stops at its first error (a record of nested
lists could otherwise make thousands of errors)."""


def _array_to_list(value: Any) -> Any:
    """NumPy arrays (the nas-bench-201 embeddings) become plain lists before validation."""
    return value.tolist() if isinstance(value, np.ndarray) else value


class Record(BaseModel):
    """A result record; ``METRICS`` names the fields that hold the setting's metric values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    METRICS: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _few_keys(cls, value: Any) -> Any:
        if isinstance(value, dict) and len(value) > MAX_ITEMS:
            raise ValueError(f"{len(value)} keys, more than {MAX_ITEMS}: not a result record")
        return value

    def metrics(self) -> dict[str, float]:
        """The metric values of this record, in the order of ``METRICS``."""
        return {name: getattr(self, name) for name in self.METRICS}


class MRRecord(Record):
    """Fields every NAS-Bench-MR record shares: complexity and the architecture, twice encoded."""

    # bounded by the largest architecture, which also keeps a forged value from
    # overflowing the exact integers (MACs as int64)
    flops: Annotated[Positive, Field(le=LARGEST.gmac)]
    params: Annotated[Positive, Field(le=LARGEST.mparams)]
    input_channel: Annotated[tuple[StrictInt, StrictInt], Bounded]
    last_channel: StrictInt
    inverted_residual_setting: Annotated[
        list[tuple[StrictInt, Ints, Ints]], Field(fail_fast=True), Bounded
    ]
    embedding: Ints

    @field_validator("input_channel", "last_channel")
    @classmethod
    def _channels_in_space(cls, value: Any, info: ValidationInfo) -> Any:
        for channels in value if isinstance(value, tuple) else (value,):
            if channels not in CHANNELS:
                raise ValueError(
                    f"{info.field_name} {shown(value)} is not a multiple of 8 in [8, 128]"
                )
        return value

    @field_validator("inverted_residual_setting")
    @classmethod
    def _setting_is_an_architecture(
        cls, value: list[tuple[int, list[int], list[int]]], info: ValidationInfo
    ) -> list[tuple[int, list[int], list[int]]]:
        if {"input_channel", "last_channel"} <= set(info.data):
            try:
                Arch.from_setting(info.data["input_channel"], value, info.data["last_channel"])
            except ArchError as err:
                raise ValueError(
                    f"with input_channel and last_channel, not an architecture ({err})"
                ) from None
        return value

    @field_validator("embedding")
    @classmethod
    def _embedding_agrees(cls, value: list[int], info: ValidationInfo) -> list[int]:
        arch = Arch.from_embedding(value)
        fields = ("input_channel", "inverted_residual_setting", "last_channel")
        if not set(fields) <= set(info.data):
            return value  # a field the check needs is invalid, and already reported
        other = Arch.from_setting(*(info.data[name] for name in fields))
        if other != arch:
            raise ValueError(
                "disagrees with input_channel/inverted_residual_setting/last_channel: "
                f"the embedding is {arch.code}, the setting is {other.code}"
            )
        return value

    @property
    def arch(self) -> Arch:
        """The architecture this record evaluates."""
        return Arch.from_embedding(self.embedding)


class SegRecord(MRRecord):
    """A segmentation result (seg, seg-4x): mIoU, mAcc, aAcc in percent."""

    METRICS: ClassVar[tuple[str, ...]] = ("mIoU", "mAcc", "aAcc")

    mIoU: Percent
    mAcc: Percent
    aAcc: Percent


class ClsRecord(MRRecord):
    """A classification or video result: top1 and top5 accuracy in percent, top5 >= top1."""

    METRICS: ClassVar[tuple[str, ...]] = ("top1", "top5")

    top1: Percent
    top5: Percent

    @field_validator("top5")
    @classmethod
    def _top5_not_below_top1(cls, value: float, info: ValidationInfo) -> float:
        top1 = info.data.get("top1")
        if top1 is not None and value < top1:
            raise ValueError(f"top5 {value} is below top1 {top1}")
        return value


class Det3dRecord(MRRecord):
    """A KITTI 3D-detection result: AP at moderate difficulty, in percent."""

    METRICS: ClassVar[tuple[str, ...]] = ("moderate",)

    moderate: Percent


class Nb201Record(Record):
    """A NAS-Bench-201 cell: 6 edges x 5 ops one-hot, ImageNet16-120 accuracy, MFLOPs, M params."""

    METRICS: ClassVar[tuple[str, ...]] = ("Acc", "Flops", "Params")

    embedding: Annotated[
        list[StrictFloat], Field(fail_fast=True), BeforeValidator(_array_to_list), Bounded
    ]
    Acc: Percent
    Flops: Positive
    Params: Positive

    @field_validator("embedding")
    @classmethod
    def _one_hot_per_edge(cls, value: list[float]) -> list[float]:
        edges, ops = len(NB201_EDGES), len(NB201_OPS)
        if len(value) != edges * ops:
            raise ValueError(
                f"has {len(value)} values, expected {edges * ops} ({edges} edges x {ops} ops)"
            )
        for edge in range(edges):
            group = value[edge * ops : (edge + 1) * ops]
            if any(v not in (0.0, 1.0) for v in group) or sum(group) != 1.0:
                raise ValueError(f"edge {edge} is {group}, expected one 1.0 and four 0.0")
        return value

    @property
    def ops(self) -> tuple[int, ...]:
        """The chosen op index (0..4) of each of the 6 edges."""
        n = len(NB201_OPS)
        return tuple(
            self.embedding[e * n : (e + 1) * n].index(1.0) for e in range(len(NB201_EDGES))
        )

    @property
    def arch_str(self) -> str:
        """The cell in NAS-Bench-201's notation (:func:`~schemas.nb201.arch_str`)."""
        return arch_str(self.ops)


RECORD_MODELS: dict[Task, type[Record]] = {
    Task.SEGMENTATION: SegRecord,
    Task.CLASSIFICATION: ClsRecord,
    Task.VIDEO: ClsRecord,
    Task.DETECTION_3D: Det3dRecord,
    Task.CELL: Nb201Record,
}
"""The record model of each task (video results are classification records)."""


def record_model(setting: str) -> type[Record]:
    """The record model of a setting, chosen by its task (an unknown setting lists the known)."""
    return RECORD_MODELS[get_setting(setting).task]


MAX_ERRORS = 10
"""Most errors of one record described; more are counted."""


QUOTED = 80
"""Characters of a key or value quoted in an error (a reason keeps ``5 * QUOTED``)."""


def describe_errors(err: ValidationError) -> list[tuple[str, str]]:
    """``(field, reason)`` per error (at most :data:`MAX_ERRORS`, then a count of the
    rest); a field reads like ``inverted_residual_setting[2][1]``.

    Keys and values quoted are cut after ``QUOTED`` characters, reasons after five times
    that: a record's text stays small however large the values it was given.
    """
    limit = QUOTED
    errors = err.errors()
    out = []
    for item in errors[:MAX_ERRORS]:
        field = "".join(
            f".{cut(p, limit)}" if isinstance(p, str) else f"[{shown(p)}]" for p in item["loc"]
        )
        if item["type"] == "value_error":
            reason = str(item["ctx"]["error"])
        elif item["type"] == "missing":
            reason = item["msg"]
        else:
            reason = f"{item['msg']} (got {shown(item['input'], limit)})"
        out.append((field.lstrip(".") or "record", cut(reason, 5 * limit)))
    if len(errors) > MAX_ERRORS:
        out.append(("record", f"{len(errors) - MAX_ERRORS} more error(s)"))
    return out
