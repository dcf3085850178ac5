"""The raw training-log format: OpenMMLab JSON lines, their metric spellings and the log settings.

A log drop is laid out as ``logs/<setting>/<arch code>/<run>.log.json``; each file is
the ``*.log.json`` an OpenMMLab runner writes (mmcv's ``TextLoggerHook``): one JSON
object per line. A *meta* line (``env_info``/``config``/``seed``/``exp_name``, no
``mode``) opens a run, and again after a resume; ``train`` lines carry ``epoch``,
``iter``, ``lr``, ``loss`` and timings; ``val`` lines carry the evaluation metrics.
:class:`LogLine` is the contract of one line; the parser reads the same fields.

Metric normalisation (every metric is stored as a percentage under the benchmark's
name, see :data:`METRIC_KEYS`):

* ``accuracy_top-k`` (mmclassification 0.x) and ``accuracy/topk`` (mmpretrain 1.x)
  are percentages; ``topk_acc`` (mmaction2 0.x) and ``acc/topk`` (mmaction2 1.x) are
  fractions and are multiplied by 100 (every scaled value is rounded to 10 decimals,
  which drops binary noise: 0.7609 becomes 76.09, not 76.09000000000001).
* ``mIoU``/``mAcc``/``aAcc`` are fractions in mmsegmentation 0.x logs and percentages
  in 1.x. The rule is per run: if every segmentation value the run logged is <= 1, the
  run logged fractions and all its segmentation values are multiplied by 100;
  otherwise they are percentages. (A percentage-scale run whose pixel accuracy never
  exceeds 1% has not learned anything a benchmark could use.)
* A line without ``mode`` (mmengine style) is a training line if it holds ``loss``, an
  evaluation line if it holds a metric key, and a meta line otherwise; ``step`` stands
  in for a missing ``epoch``. Of a meta line only ``config`` is read (its
  ``max_epochs``, or ``total_epochs`` of older mmcv configs: the run's expected length).
* Metrics are read from evaluation lines only: mmaction2 also logs the training batch's
  ``top1_acc`` on its training lines, which is no result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from schemas.settings import CLS_METRICS, SEG_METRICS, SETTINGS, Setting, Task

Scale = Literal["percent", "fraction", "auto"]


@dataclass(frozen=True, slots=True)
class MetricKey:
    """A metric key of some OpenMMLab tool: the benchmark metric it means and its scale."""

    key: str
    metric: str
    scale: Scale


METRIC_KEYS: tuple[MetricKey, ...] = (
    MetricKey("mIoU", "mIoU", "auto"),
    MetricKey("mAcc", "mAcc", "auto"),
    MetricKey("aAcc", "aAcc", "auto"),
    MetricKey("accuracy_top-1", "top1", "percent"),
    MetricKey("accuracy_top-5", "top5", "percent"),
    MetricKey("accuracy/top1", "top1", "percent"),
    MetricKey("accuracy/top5", "top5", "percent"),
    MetricKey("top1_acc", "top1", "fraction"),
    MetricKey("top5_acc", "top5", "fraction"),
    MetricKey("acc/top1", "top1", "fraction"),
    MetricKey("acc/top5", "top5", "fraction"),
)
"""Known metric keys; when a line holds several keys of one metric the first listed wins."""

METRICS: tuple[str, ...] = SEG_METRICS + CLS_METRICS
"""The benchmark's metric names, all percentages in [0, 100]."""

LOG_SUFFIX = ".log.json"


class LogLine(BaseModel):
    """One line of an OpenMMLab ``*.log.json`` (meta, ``train`` or ``val``); unknown keys pass.

    Field order is mmcv's key order, so ``model_dump_json(by_alias=True,
    exclude_none=True)`` writes a line the way mmcv does.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, allow_inf_nan=False)

    env_info: str | None = None
    config: str | None = None
    seed: StrictInt | None = None
    exp_name: str | None = None
    mode: Literal["train", "val"] | None = None
    epoch: StrictInt | None = Field(None, ge=1)
    iter: StrictInt | None = Field(None, ge=0)
    step: StrictInt | None = Field(None, ge=0)
    lr: StrictFloat | None = None
    memory: StrictInt | None = None
    data_time: StrictFloat | None = None
    loss: StrictFloat | None = None
    time: StrictFloat | None = None
    mIoU: StrictFloat | None = Field(None, ge=0, le=100)
    mAcc: StrictFloat | None = Field(None, ge=0, le=100)
    aAcc: StrictFloat | None = Field(None, ge=0, le=100)
    accuracy_top_1: StrictFloat | None = Field(None, alias="accuracy_top-1", ge=0, le=100)
    accuracy_top_5: StrictFloat | None = Field(None, alias="accuracy_top-5", ge=0, le=100)
    accuracy_top1: StrictFloat | None = Field(None, alias="accuracy/top1", ge=0, le=100)
    accuracy_top5: StrictFloat | None = Field(None, alias="accuracy/top5", ge=0, le=100)
    top1_acc: StrictFloat | None = Field(None, ge=0, le=1)
    top5_acc: StrictFloat | None = Field(None, ge=0, le=1)
    acc_top1: StrictFloat | None = Field(None, alias="acc/top1", ge=0, le=1)
    acc_top5: StrictFloat | None = Field(None, alias="acc/top5", ge=0, le=1)


def line_columns() -> dict[str, str]:
    """The JSON key and SQL type of every :class:`LogLine` field, for a columnar reader."""
    return {
        field.alias or name: _sql_type(field.annotation)
        for name, field in LogLine.model_fields.items()
    }


def _sql_type(annotation: object) -> str:
    """SQL type of an optional field: ``Literal``/``str`` VARCHAR, int BIGINT, float DOUBLE."""
    member = next(m for m in get_args(annotation) if m is not type(None))
    if get_origin(member) is Literal:
        return "VARCHAR"
    base = getattr(member, "__origin__", member)  # Annotated[int, Strict()] -> int
    return {str: "VARCHAR", int: "BIGINT", float: "DOUBLE"}[base]


DIGITS_SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting(
            name="digits-cls",
            task=Task.CLASSIFICATION,
            description="scikit-learn digits (8x8, upsampled), 10-class classification, CPU",
            metrics=CLS_METRICS,
            primary_metric="top1",
        ),
        Setting(
            name="digits-seg",
            task=Task.SEGMENTATION,
            description="scikit-learn digits (8x8, upsampled), per-pixel digit class "
            "(10 digits + background), CPU",
            metrics=SEG_METRICS,
            primary_metric="mIoU",
        ),
    ]
}
"""The two settings ``nasmr train`` produces real logs for on a laptop."""


def log_setting(name: str) -> Setting:
    """A setting a log drop may hold: a digits setting or an MR setting whose metrics logs carry.

    3ddet is not one: no key of :data:`METRIC_KEYS` means its ``moderate``, so none of its
    evaluation lines could be required to hold a metric, and an export of it could not be written.
    """
    logged = {k: s for k, s in SETTINGS.items() if s.is_mr and set(s.metrics) <= set(METRICS)}
    known = {**logged, **DIGITS_SETTINGS}
    if name in known:
        return known[name]
    if name in SETTINGS and SETTINGS[name].is_mr:
        missing = sorted(set(SETTINGS[name].metrics) - set(METRICS))
        raise KeyError(
            f"setting {name!r} publishes {', '.join(missing)}, which no log key carries; "
            f"settings with logs: {', '.join(known)}"
        )
    raise KeyError(f"unknown setting {name!r}; known settings: {', '.join(known)}")
