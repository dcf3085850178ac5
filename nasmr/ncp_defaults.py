"""NCP's default search budget, in a module without torch so the CLI can show it in --help."""

DEFAULT_STEPS = 70
"""Gradient steps per start."""

DEFAULT_STARTS = 16
"""Random starting architectures, searched as one batch."""

DEFAULT_LR = 0.05
"""Step size: the largest move of one normalised embedding position per step."""
