"""Real training on a laptop CPU: any architecture of the space on scikit-learn's digits.

The two log settings of :data:`schemas.logs.DIGITS_SETTINGS` share one dataset: the
1797 bundled 8x8 digit images (no download), upsampled bilinearly to ``image_size``
and repeated to 3 channels. A fixed split (independent of the training seed) keeps
360 images for validation.

* ``digits-cls``: 10-way classification (the supernet's classification head).
* ``digits-seg``: per-pixel classes, 0 for background (ink below 8 of 16) and
  ``digit + 1`` on the strokes, 11 classes (the supernet's segmentation head, its
  1/4-resolution logits upsampled bilinearly to the image size).

Each run writes the ``*.log.json`` an OpenMMLab runner would (mmcv's
``TextLoggerHook``): a meta line (env, config, seed), ``train`` lines every
``log_interval`` iterations and at the end of each epoch (mean loss and timings of
the interval, floats rounded to 5 decimals) and one ``val`` line per epoch, with
mmclassification's keys (``accuracy_top-1``/``-5``, percentages) or mmsegmentation
0.x's (``aAcc``, ``mIoU``, ``mAcc``, fractions of 4 decimals). Same seed, same
weights and metrics.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import Tensor

from nasmr import __version__, paths
from nasmr.space import Arch, sample
from nasmr.supernet import Supernet
from nasmr.train_config import VAL_SPLIT, TrainConfig
from schemas.logs import DIGITS_SETTINGS, LOG_SUFFIX, LogLine
from schemas.settings import Task

SPLIT_SEED = 0
INK_THRESHOLD = 8
"""A pixel (0..16) at or above this is a digit stroke in the segmentation masks."""

MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4


@dataclass(frozen=True, slots=True)
class DigitsData:
    """Images ``(N, 3, S, S)`` and targets: class ``(N,)`` or per-pixel class ``(N, S, S)``."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    num_classes: int


def digits_data(task: Task, image_size: int, train_images: int, val_images: int) -> DigitsData:
    """The digits split for a task, images normalised and upsampled to ``image_size``."""
    digits = load_digits()
    order = np.random.RandomState(SPLIT_SEED).permutation(len(digits.target))
    val_idx, train_idx = order[:VAL_SPLIT][:val_images], order[VAL_SPLIT:][:train_images]
    pixels = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8), 0..16
    images = F.interpolate(pixels / 16.0, size=(image_size, image_size), mode="bilinear")
    images = ((images - 0.5) / 0.5).repeat(1, 3, 1, 1)
    labels = torch.tensor(digits.target, dtype=torch.int64)
    if task is Task.SEGMENTATION:
        ink = (pixels >= INK_THRESHOLD).squeeze(1).to(torch.int64)
        masks = ink * (labels[:, None, None] + 1)
        targets = F.interpolate(masks[:, None].float(), size=(image_size, image_size))
        targets, num_classes = targets[:, 0].to(torch.int64), 11
    else:
        targets, num_classes = labels, 10
    train, val = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
    return DigitsData(images[train], targets[train], images[val], targets[val], num_classes)


def config_text(arch: Arch, setting: str, config: TrainConfig) -> str:
    """The run's configuration in mmcv's Python-config style (``max_epochs`` is read back)."""
    task = DIGITS_SETTINGS[setting].task
    head, metric = ("seg", "mIoU") if task is Task.SEGMENTATION else ("cls", "accuracy")
    return "\n".join(
        [
            f"model = dict(type='Supernet', arch='{arch.code}', head='{head}')",
            f"data = dict(type='sklearn.datasets.load_digits', image_size={config.image_size}, "
            f"train_images={config.train_images}, val_images={config.val_images}, "
            f"samples_per_gpu={config.batch_size})",
            f"optimizer = dict(type='SGD', lr={config.lr}, momentum={MOMENTUM}, "
            f"weight_decay={WEIGHT_DECAY})",
            "lr_config = dict(policy='CosineAnnealing', min_lr=0, by_epoch=False)",
            f"runner = dict(type='EpochBasedRunner', max_epochs={config.epochs})",
            f"log_config = dict(interval={config.log_interval}, "
            "hooks=[dict(type='TextLoggerHook')])",
            f"evaluation = dict(interval=1, metric='{metric}')",
            f"seed = {config.seed}",
        ]
    )


def env_info() -> str:
    """The environment summary of the meta line (mmcv's ``collect_env``, abridged)."""
    return "\n".join(
        [
            f"sys.platform: {platform.system().lower()}",
            f"Python: {platform.python_version()}",
            f"PyTorch: {torch.__version__}",
            "GPU available: False",
            f"nasmr: {__version__}",
        ]
    )


def _evaluate(model: Supernet, data: DigitsData, task: Task, batch_size: int) -> dict[str, float]:
    """The evaluation metrics under the tool's own keys and scale (mmcls or mmseg 0.x)."""
    model.eval()
    with torch.no_grad():
        logits = torch.cat(
            [
                _forward(model, data.x_val[i : i + batch_size], task)
                for i in range(0, len(data.x_val), batch_size)
            ]
        )
    model.train()
    if task is Task.SEGMENTATION:
        return segmentation_metrics(logits.argmax(1), data.y_val, data.num_classes)
    top5 = logits.topk(5, dim=1).indices
    hits = top5 == data.y_val[:, None]
    n = len(data.y_val)
    return {
        "accuracy_top-1": round(100.0 * hits[:, 0].sum().item() / n, 5),
        "accuracy_top-5": round(100.0 * hits.any(1).sum().item() / n, 5),
    }


def segmentation_metrics(pred: Tensor, target: Tensor, num_classes: int) -> dict[str, float]:
    """mmsegmentation's aAcc, mIoU, mAcc: classes absent from target and prediction ignored."""
    index = target.flatten() * num_classes + pred.flatten()
    confusion = torch.bincount(index, minlength=num_classes**2).reshape(num_classes, -1)
    confusion = confusion.double()
    intersect = confusion.diag()
    labelled, predicted = confusion.sum(1), confusion.sum(0)
    iou = intersect / (labelled + predicted - intersect)
    acc = intersect / labelled

    def fraction(value: float) -> float:  # mmseg rounds the percentage to 2 decimals
        return round(round(100.0 * value, 2) / 100.0, 4)

    return {
        "aAcc": fraction((intersect.sum() / labelled.sum()).item()),
        "mIoU": fraction(iou.nanmean().item()),
        "mAcc": fraction(acc.nanmean().item()),
    }


def _forward(model: Supernet, x: Tensor, task: Task) -> Tensor:
    out = model(x)
    if task is Task.SEGMENTATION:
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return out


def check_run_name(run: str) -> str:
    """``run`` if it names a file in the architecture's folder; a path would leave the layout."""
    if run in ("", ".", "..") or Path(run).name != run or "\\" in run:
        raise ValueError(f"run name {run!r}: must be a file name, without '/' or '\\'")
    return run


def log_path(out_dir: Path, setting: str, arch: Arch, run: str) -> Path:
    """Where a run's log goes in a log drop: ``logs/<setting>/<code>/<run>.log.json``."""
    return Path(out_dir) / "logs" / setting / arch.code / f"{check_run_name(run)}{LOG_SUFFIX}"


def train(
    arch: Arch,
    setting: str,
    out_dir: Path,
    config: TrainConfig = TrainConfig(),
    run: str | None = None,
) -> Path:
    """Train ``arch`` on a digits setting and write its OpenMMLab log; returns the log's path.

    ``run`` names the log file; by default the start time (``YYYYMMDD_HHMMSS``), as mmcv.
    """
    if setting not in DIGITS_SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; trainable: {', '.join(DIGITS_SETTINGS)}")
    paths.outside_releases(out_dir, "write the log drop elsewhere (--out)")
    task = DIGITS_SETTINGS[setting].task
    path = log_path(out_dir, setting, arch, run or time.strftime("%Y%m%d_%H%M%S"))
    if path.exists():  # before training, not after: logs are never overwritten
        raise FileExistsError(f"{path}: a log of this run exists; name the run otherwise")
    torch.manual_seed(config.seed)
    data = digits_data(task, config.image_size, config.train_images, config.val_images)
    model = Supernet(
        arch, num_classes=data.num_classes, head="seg" if task is Task.SEGMENTATION else "cls"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        _run(model, data, task, arch, setting, config, path)
    finally:
        torch.set_num_threads(threads)
    return path


def _run(
    model: Supernet,
    data: DigitsData,
    task: Task,
    arch: Arch,
    setting: str,
    config: TrainConfig,
    path: Path,
) -> None:
    """The training loop of :func:`train`, logging to ``path`` line by line as it goes."""
    optimiser = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY
    )
    shuffle = torch.Generator().manual_seed(config.seed)
    iters_per_epoch = math.ceil(len(data.x_train) / config.batch_size)
    total = iters_per_epoch * config.epochs
    with path.open("x", encoding="utf-8") as log:

        def write(line: LogLine) -> None:
            log.write(line.model_dump_json(by_alias=True, exclude_none=True) + "\n")
            log.flush()

        write(
            LogLine(
                env_info=env_info(),
                config=config_text(arch, setting, config),
                seed=config.seed,
                exp_name=f"{setting}.py",
            )
        )
        step = 0
        for epoch in range(1, config.epochs + 1):
            order = torch.randperm(len(data.x_train), generator=shuffle)
            losses, times, data_times = [], [], []
            tick = time.perf_counter()
            for i in range(iters_per_epoch):
                lr = 0.5 * config.lr * (1 + math.cos(math.pi * step / total))
                for group in optimiser.param_groups:
                    group["lr"] = lr
                batch = order[i * config.batch_size : (i + 1) * config.batch_size]
                x, y = data.x_train[batch], data.y_train[batch]
                loaded = time.perf_counter()
                loss = F.cross_entropy(_forward(model, x, task), y)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                step += 1
                losses.append(loss.item())
                done = time.perf_counter()
                times.append(done - tick)
                data_times.append(loaded - tick)
                tick = done
                if (i + 1) % config.log_interval == 0 or i + 1 == iters_per_epoch:
                    write(
                        LogLine(
                            mode="train",
                            epoch=epoch,
                            iter=i + 1,
                            lr=round(lr, 5),
                            data_time=round(float(np.mean(data_times)), 5),
                            loss=round(float(np.mean(losses)), 5),
                            time=round(float(np.mean(times)), 5),
                        )
                    )
                    losses, times, data_times = [], [], []
            metrics = _evaluate(model, data, task, config.batch_size)
            write(
                LogLine.model_validate(
                    {"mode": "val", "epoch": epoch, "iter": iters_per_epoch, "lr": round(lr, 5)}
                    | metrics
                )
            )


def mini(n: int, out_dir: Path, config: TrainConfig = TrainConfig()) -> list[Path]:
    """A complete raw-log drop: ``n`` architectures sampled with ``config.seed``, each
    trained on every digits setting."""
    return [
        train(arch, setting, out_dir, config)
        for arch in sample(n, config.seed)
        for setting in DIGITS_SETTINGS
    ]
