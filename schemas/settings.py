"""The registry of benchmark settings: task, metrics and primary metric of each."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from nasmr.shown import did_you_mean


class Task(StrEnum):
    """The task of a setting; it decides the record model and the metrics."""

    SEGMENTATION = "segmentation"
    CLASSIFICATION = "classification"
    VIDEO = "video"
    DETECTION_3D = "3d-detection"
    CELL = "nas-bench-201"


class Setting(BaseModel):
    """One benchmark setting, as laid out in the raw drop (``<name>/trainval.pkl``)."""

    model_config = ConfigDict(frozen=True)

    name: str
    task: Task
    description: str
    metrics: tuple[str, ...]
    primary_metric: str
    space: str = "nasbench-mr"  # "nasbench-mr" (2507 MR architectures) or "nas-bench-201"
    published: bool = True  # False: the authors never published results, so nothing to learn
    decimals: int = 2  # of the published metric values (HMDB51 top-k: 23.043)

    @property
    def is_mr(self) -> bool:
        """One of the NAS-Bench-MR settings (the 2507 multi-resolution architectures)."""
        return self.space == "nasbench-mr"


NB201 = "nas-bench-201"
"""Name of the NAS-Bench-201 setting (and of its cell space)."""

SEG_METRICS = ("mIoU", "mAcc", "aAcc")
CLS_METRICS = ("top1", "top5")

SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting(
            name="seg",
            task=Task.SEGMENTATION,
            description="Cityscapes segmentation",
            metrics=SEG_METRICS,
            primary_metric="mIoU",
        ),
        Setting(
            name="seg-4x",
            task=Task.SEGMENTATION,
            description="Cityscapes segmentation, the '4x' variant",
            metrics=SEG_METRICS,
            primary_metric="mIoU",
        ),
        Setting(
            name="cls-10c",
            task=Task.CLASSIFICATION,
            description="ImageNet subset classification (10 classes)",
            metrics=CLS_METRICS,
            primary_metric="top1",
        ),
        Setting(
            name="cls-10-1000",
            task=Task.CLASSIFICATION,
            description="ImageNet subset classification (10 classes x 1000 images)",
            metrics=CLS_METRICS,
            primary_metric="top1",
        ),
        Setting(
            name="cls-50-100",
            task=Task.CLASSIFICATION,
            description="ImageNet subset classification (50 classes x 100 images)",
            metrics=CLS_METRICS,
            primary_metric="top1",
        ),
        Setting(
            name="cls-50-1000",
            task=Task.CLASSIFICATION,
            description="ImageNet subset classification (50 classes x 1000 images)",
            metrics=CLS_METRICS,
            primary_metric="top1",
        ),
        Setting(
            name="video",
            task=Task.VIDEO,
            description="HMDB51 video recognition",
            metrics=CLS_METRICS,
            primary_metric="top1",
            decimals=3,
        ),
        Setting(
            name="video-p",
            task=Task.VIDEO,
            description="HMDB51 video recognition, pretrained variant",
            metrics=CLS_METRICS,
            primary_metric="top1",
            decimals=3,
        ),
        Setting(
            name="3ddet",
            task=Task.DETECTION_3D,
            description="KITTI 3D detection",
            metrics=("moderate",),
            primary_metric="moderate",
            published=False,
        ),
        Setting(
            name=NB201,
            task=Task.CELL,
            description="NAS-Bench-201 cell space, ImageNet16-120 accuracy",
            metrics=("Acc", "Flops", "Params"),
            primary_metric="Acc",
            space=NB201,
        ),
    ]
}
"""Every setting of the benchmark's design, including 3ddet whose results were never published."""

MR_SETTINGS: tuple[str, ...] = tuple(name for name, s in SETTINGS.items() if s.is_mr)

PREDICTOR_SETTINGS: tuple[str, ...] = tuple(name for name, s in SETTINGS.items() if s.published)
"""The settings a predictor can exist for: those with published results (not 3ddet)."""

NCP_SETTINGS: tuple[str, ...] = tuple(s for s in PREDICTOR_SETTINGS if s in MR_SETTINGS)
"""The settings NCP can search: MR settings with published results."""


def check_predictor_settings(names: list[str]) -> list[str]:
    """``names`` when each can have a predictor; else a ValueError naming the others. A typo
    (or 3ddet, which has no results) would silently train fewer predictors."""
    if not names:
        raise ValueError("no setting named: name at least one, or leave the list out for all")
    unknown = [name for name in names if name not in PREDICTOR_SETTINGS]
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)}: no setting with published results; those are "
            f"{', '.join(PREDICTOR_SETTINGS)}"
        )
    return names


def published_decimals(name: str) -> int:
    """Decimals of ``name``'s published metric values (2 for a setting of no drop)."""
    return SETTINGS[name].decimals if name in SETTINGS else 2


def half_unit(decimals: int) -> float:
    """Half a unit in the last of ``decimals`` decimals, plus float slack: the most a value may
    differ from the published one that rounds it (67.085 agrees with 67.08 and 67.09)."""
    return 0.5 * 10.0**-decimals + 1e-9


def get_setting(name: str) -> Setting:
    """The setting called ``name``; an unknown name is an error that lists the known ones."""
    try:
        return SETTINGS[name]
    except KeyError:
        hint = did_you_mean(name, SETTINGS)
        raise KeyError(
            f"unknown setting {name!r}; known settings: {', '.join(SETTINGS)}{hint}"
        ) from None
