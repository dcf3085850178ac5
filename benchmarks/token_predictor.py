"""Research: a branch-token transformer predictor against the default MLP, on the same splits.

The default MLP sees the 27 embedding positions as one flat vector. Here every branch
of every stage is a token (the stage's repeats, the branch's conv count and channels,
each normalised to [0, 1]), plus a stem token and a head token: 12 tokens with a
learned embedding of their place. One self-attention layer lets branches of different
resolutions interact (the fusion of the multi-resolution network); the tokens are
mean- and max-pooled and concatenated with the default's complexity and structure
features (``nasmr.features.mr_features``), then two hidden layers as in the default.
Loss: smooth-L1 (beta 0.13) on the standardised metrics and log complexity, plus the
pairwise ranking loss on the primary metric; the epoch is chosen by validation tau.
Every input is a torch function of the relaxed embedding, so NCP could differentiate
it. The script prints, per split seed, the validation and test tau of one model,
then the default MLP's test tau on the same splits:

    .venv/bin/python -m benchmarks.token_predictor --setting seg [--seeds 5]
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import kendalltau
from torch import Tensor, nn

from benchmarks.tune_predictor import mean_tau
from nasmr import paths
from nasmr.features import embedding_tensor, mr_features, normalise
from nasmr.ingest import load_setting
from nasmr.predictor import default_config, pairwise_loss, split_labels, torch_threads
from nasmr.space import N_STAGES, Arch
from schemas.settings import get_setting

TOKENS = 2 + N_STAGES * (N_STAGES + 1) // 2
"""Stem token, one token per branch of stages 1..4 (1+2+3+4), head token."""


def branch_tokens(z: Tensor) -> Tensor:
    """``(n, TOKENS, 3)`` tokens from normalised embeddings ``z`` ``(n, 27)``; zeros pad."""
    zero = torch.zeros_like(z[:, 0])
    tokens = [torch.stack([z[:, 0], z[:, 1], zero], 1)]
    i = 2
    for k in range(1, N_STAGES + 1):
        repeats, convs, channels = z[:, i], z[:, i + 1 : i + 1 + k], z[:, i + 1 + k : i + 1 + 2 * k]
        tokens += [torch.stack([repeats, convs[:, b], channels[:, b]], 1) for b in range(k)]
        i += 1 + 2 * k
    tokens.append(torch.stack([z[:, i], zero, zero], 1))
    return torch.stack(tokens, 1)


@dataclass(frozen=True)
class TokenConfig:
    """Width, depth and training of the token model (the measured recipe by default)."""

    width: int = 64
    layers: int = 1
    epochs: int = 100
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    smooth_l1_beta: float = 0.13
    rank_weight: float = 0.2
    rank_pairs: int = 2048


class TokenNet(nn.Module):
    """Self-attention over branch tokens, pooled, joined with the global features."""

    def __init__(self, features: int, outputs: int, config: TokenConfig) -> None:
        super().__init__()
        d = config.width
        self.project = nn.Linear(3, d)
        self.place = nn.Parameter(torch.randn(TOKENS, d) * 0.1)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, 0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.features = nn.BatchNorm1d(features)
        self.head = nn.Sequential(
            nn.Linear(2 * d + features, 256), nn.BatchNorm1d(256), nn.SiLU(), nn.Dropout(0.5),
            nn.Linear(256, 128), nn.BatchNorm1d(128), nn.SiLU(), nn.Dropout(0.5),
            nn.Linear(128, outputs),
        )  # fmt: skip

    def forward(self, z: Tensor) -> Tensor:
        h = self.encoder(self.project(branch_tokens(z)) + self.place)
        pooled = torch.cat([h.mean(1), h.amax(1), self.features(mr_features(z))], 1)
        return self.head(pooled)


def _targets(frame: pd.DataFrame, setting: str) -> tuple[np.ndarray, int]:
    """The setting's metrics and log FLOPs/params, and the primary metric's column."""
    metrics = list(get_setting(setting).metrics)
    values = frame[metrics].to_numpy(float)
    complexity = np.log(frame[["flops", "params"]].to_numpy(float))
    return np.hstack([values, complexity]), metrics.index(get_setting(setting).primary_metric)


def fit_and_score(
    frame: pd.DataFrame, setting: str, seed: int, config: TokenConfig = TokenConfig()
) -> tuple[float, float]:
    """Train on split ``seed``'s train rows; validation and test tau of the primary metric."""
    z = normalise(embedding_tensor([Arch.from_code(c) for c in frame["code"]]))
    targets, primary = _targets(frame, setting)
    labels = split_labels(list(frame["code"]), seed)
    train, val, test = (np.flatnonzero(labels == s) for s in ("train", "val", "test"))
    mean, std = targets[train].mean(0), targets[train].std(0)
    y = torch.tensor((targets - mean) / std, dtype=torch.float32)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = TokenNet(mr_features(z[:1]).shape[1], y.shape[1], config)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    per_epoch = math.ceil(len(train) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * per_epoch, pct_start=0.3
    )
    best, state = -math.inf, copy.deepcopy(net.state_dict())
    for epoch in range(config.epochs):
        net.train()
        order = train[torch.randperm(len(train), generator=generator).numpy()]
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            if len(rows) < 2:
                continue  # BatchNorm needs two rows
            pred = net(z[rows])
            loss = nn.functional.smooth_l1_loss(pred, y[rows], beta=config.smooth_l1_beta)
            loss = loss + config.rank_weight * pairwise_loss(
                pred[None, :, primary], y[rows, primary], config.rank_pairs, generator
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        if (epoch + 1) % 5:
            continue
        tau = _tau(net, z, targets, val, primary)
        if tau > best:
            best, state = tau, copy.deepcopy(net.state_dict())
    net.load_state_dict(state)
    return best, _tau(net, z, targets, test, primary)


def _tau(net: TokenNet, z: Tensor, targets: np.ndarray, rows: np.ndarray, primary: int) -> float:
    net.eval()
    with torch.no_grad():
        pred = net(z[rows])[:, primary].numpy()
    return float(kendalltau(pred, targets[rows, primary]).statistic)


def main() -> None:
    """Print the token model's validation and test tau per seed, then the default MLP's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=paths.raw_dir())
    parser.add_argument("--setting", default="seg")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not get_setting(args.setting).is_mr:
        parser.error(f"{args.setting} is not a NAS-Bench-MR setting")
    load = load_setting(args.raw, args.setting)
    if load.status != "ok":
        parser.error(f"{args.setting} in {args.raw}: {load.status} ({load.reason})")
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, torch {args.threads} thread(s)")
    vals, tests = [], []
    with torch_threads(args.threads):
        for seed in range(args.seeds):
            start = time.perf_counter()
            val, test = fit_and_score(load.valid, args.setting, seed)
            vals.append(val)
            tests.append(test)
            print(f"  seed {seed}: val tau {val:.4f}, test tau {test:.4f} "
                  f"({time.perf_counter() - start:.1f} s)")  # fmt: skip
    spread = f" ± {statistics.stdev(tests):.3f}" if len(tests) > 1 else ""
    val, test = statistics.mean(vals), statistics.mean(tests)
    print(f"token model: val {val:.4f}, test {test:.4f}{spread}")
    frames = {args.setting: load.valid}
    seeds = range(args.seeds)
    default = mean_tau(frames, args.setting, default_config([args.setting]), seeds, "test")
    print(f"default MLP: test {default:.4f}")


if __name__ == "__main__":
    main()
