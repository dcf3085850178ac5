"""The manifest of a published release: what it holds, where it came from, how it was made.

``manifest.json`` sits at the root of every ``releases/<version>/`` folder. It is
the machine-readable half of the datasheet (``README.md``); ``SHA256SUMS`` is
the file listing that ``nasmr release verify`` checks.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1
"""Version of the released tables' layout; bump it when a table or column changes meaning."""

FLOPS_CONVENTION = (
    "flops = multiply-accumulates / 1e9 (GMac) and params = parameters / 1e6 of the "
    "classification-head network (50 classes) on a 1x3x128x128 input, counted with the rules "
    "of thop 0.0.31: convolution = output elements x (in_channels / groups x kernel area "
    "+ 1 if bias); BatchNorm = 2 x input elements; ReLU, nearest upsampling, functional "
    "resizes and the functional average pool = 0; params = convolution and BatchNorm "
    "parameters (running statistics are buffers, not parameters)."
)
"""How the published (and recomputed) FLOPs and params of every architecture are counted."""

_SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
"""MAJOR.MINOR.PATCH in ASCII digits, matched against the whole text: the text names the
release's folder, so it must be the version's one spelling (``$`` let a trailing newline
through, ``\\d`` any Unicode digit)."""


class Version(NamedTuple):
    """A semantic version ``major.minor.patch``; tuples order like versions."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``X.Y.Z`` (no leading zeros, no pre-release tag); anything else is a ValueError."""
        match = _SEMVER.fullmatch(text)
        if match is None:
            raise ValueError(f"invalid release version {text!r}: expected MAJOR.MINOR.PATCH")
        return cls(*(int(part) for part in match.groups()))

    @staticmethod
    def spells(text: str) -> bool:
        """Whether ``text`` is a version as :meth:`parse` reads one."""
        return _SEMVER.fullmatch(text) is not None

    def bump(self, level: str) -> Version:
        """The next version at ``level`` ('major', 'minor' or 'patch')."""
        if level == "major":
            return Version(self.major + 1, 0, 0)
        if level == "minor":
            return Version(self.major, self.minor + 1, 0)
        if level == "patch":
            return Version(self.major, self.minor, self.patch + 1)
        raise ValueError(f"unknown version level {level!r}: expected major, minor or patch")

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


class FileDigest(BaseModel):
    """One file and its identity: a path, its size and its sha256."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class CodeVersion(BaseModel):
    """The nasmr code that published the release; git fields are None outside a checkout."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    package: str
    git_commit: str | None = None
    git_dirty: bool | None = None


class TableInfo(BaseModel):
    """A released table: its row count and column types (Arrow type names)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: int = Field(ge=0)
    columns: dict[str, str]


class ReleaseManifest(BaseModel):
    """Everything a user or a later release needs to know about one release."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    previous_version: str | None
    created_at: datetime
    schema_version: int
    code_version: CodeVersion
    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    sources: tuple[FileDigest, ...]
    settings_present: tuple[str, ...]
    settings_missing: tuple[str, ...]
    unevaluated_codes: tuple[str, ...]
    tables: dict[str, TableInfo]
    views: tuple[str, ...]
    flops_convention: str
    predictor_metrics: tuple[dict[str, str | bool | int | float | None], ...]
    extras: tuple[str, ...]

    @field_validator("version", "previous_version")
    @classmethod
    def _semantic(cls, value: str | None) -> str | None:
        return None if value is None else str(Version.parse(value))

    @property
    def row_counts(self) -> dict[str, int]:
        """Rows per released table."""
        return {name: table.rows for name, table in self.tables.items()}
