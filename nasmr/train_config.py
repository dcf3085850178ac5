"""The schedule of ``nasmr train`` and ``nasmr mini``, apart from :mod:`nasmr.training` so
that the command line states its defaults and limits without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

VAL_SPLIT = 360
"""Images of the fixed validation split (the rest are for training)."""

TRAIN_SPLIT = 1797 - VAL_SPLIT
"""Images of the training split: the rest of scikit-learn's 1797 digits."""


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """A short schedule: SGD with momentum, per-iteration cosine decay, evaluation every epoch.

    ``threads`` is torch's CPU thread count during the run: 1 is fastest for these small
    tensors, and keeps results identical from machine to machine.
    """

    epochs: int = 2
    image_size: int = 32
    train_images: int = 512
    val_images: int = VAL_SPLIT
    batch_size: int = 16
    lr: float = 0.01
    log_interval: int = 10
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if min(self.epochs, self.batch_size, self.log_interval, self.threads) < 1:
            raise ValueError("epochs, batch_size, log_interval and threads must be >= 1")
        if not 1 <= self.train_images <= TRAIN_SPLIT:  # the log's config states the count
            raise ValueError(f"train_images must be in [1, {TRAIN_SPLIT}], got {self.train_images}")
        if not 0 <= self.seed < 2**63:  # torch's generators take a 64-bit signed seed
            raise ValueError(f"seed must be in [0, 2**63 - 1], got {self.seed}")
        if not 1 <= self.val_images <= VAL_SPLIT:
            raise ValueError(f"val_images must be in [1, {VAL_SPLIT}], got {self.val_images}")
        if self.image_size < 32 or self.image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {self.image_size}")
        last = self.train_images % self.batch_size or self.batch_size
        if self.image_size == 32 and last == 1:  # fail before a log is begun, not mid-run
            raise ValueError(
                f"train_images {self.train_images} in batches of {self.batch_size} ends on a "
                "batch of one image, whose 1x1 lowest-resolution branch BatchNorm cannot "
                "train on at image_size 32: choose another count"
            )
