"""The NAS-Bench-MR architecture space and its three lossless encodings.

An architecture is a stem (two channel counts), four stages and a head (last
channel). Stage k has k parallel branches and repeats one module ``repeats``
times; in that module branch b stacks ``convs[b]`` basic blocks of
``channels[b]`` channels. Three encodings describe the same thing:

* the code string of ``search_list.txt`` (31 ints, with the branch counts),
* the embedding of ``trainval.pkl`` (27 ints, the code without branch counts),
* the network setting (one ``[branches, convs, channels]`` entry per module)
  plus ``input_channel`` and ``last_channel``.
"""

from __future__ import annotations

import numbers
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nasmr.shown import shown

N_STAGES = 4
CHANNELS = tuple(range(8, 129, 8))
COUNTS = (1, 2, 3, 4)
CODE_LENGTH = 31
EMBEDDING_LENGTH = 27
_MAX_DIGITS = len(str(CHANNELS[-1]))


class ArchError(ValueError):
    """An encoding does not describe a valid architecture of the space."""

    def __init__(
        self,
        encoding: str,
        position: int | None,
        value: Any,
        allowed: str,
        field: str | None = None,
    ) -> None:
        if position is not None:
            field = field or _field_name(encoding, position)
        where = f" position {position} ({field})" if position is not None else ""
        message = f"invalid {encoding}:{where} value {shown(value, 200)}, expected {allowed}"
        super().__init__(message)
        self.encoding = encoding
        self.position = position
        self.value = value
        self.allowed = allowed
        self.field = field

    def __reduce__(self) -> tuple[type[ArchError], tuple[Any, ...]]:
        """Rebuild from the parts, so that the error crosses a process pool as itself."""
        return type(self), (self.encoding, self.position, self.value, self.allowed, self.field)


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage: ``repeats`` copies of a module with one branch per entry of ``convs``."""

    repeats: int
    convs: tuple[int, ...]
    channels: tuple[int, ...]

    @property
    def branches(self) -> int:
        """Parallel branches of the stage (stage k has k)."""
        return len(self.convs)


def _embedding_fields() -> list[tuple[str, str]]:
    """(name, kind) of each embedding position; kind is 'channels' or 'count'."""
    fields = [("stem.c0", "channels"), ("stem.c1", "channels")]
    for k in range(1, N_STAGES + 1):
        fields.append((f"stage{k}.repeats", "count"))
        fields += [(f"stage{k}.convs[{b}]", "count") for b in range(k)]
        fields += [(f"stage{k}.channels[{b}]", "channels") for b in range(k)]
    fields.append(("last_channel", "channels"))
    return fields


EMBEDDING_FIELDS: tuple[tuple[str, str], ...] = tuple(_embedding_fields())
"""Name and kind of each of the 27 embedding positions."""


def _stage_positions() -> list[tuple[int, tuple[int, ...], tuple[int, ...]]]:
    """Per stage, the embedding positions of its repeats, its convs and its channels."""
    names = [name for name, _ in EMBEDDING_FIELDS]
    return [
        (
            names.index(f"stage{k}.repeats"),
            tuple(names.index(f"stage{k}.convs[{b}]") for b in range(k)),
            tuple(names.index(f"stage{k}.channels[{b}]") for b in range(k)),
        )
        for k in range(1, N_STAGES + 1)
    ]


STAGE_POSITIONS: tuple[tuple[int, tuple[int, ...], tuple[int, ...]], ...] = tuple(
    _stage_positions()
)
"""Embedding positions of each stage: (repeats, convs per branch, channels per branch); the
stem's widths are positions 0 and 1, the head's the last."""

BRANCH_COUNT_POSITIONS = (3, 7, 13, 21)
"""Positions of the branch-count ints in the 31-int code; the embedding drops them."""

EMBEDDING_COLUMNS: tuple[str, ...] = tuple(
    name.replace(".", "_").replace("[", "_").replace("]", "") for name, _ in EMBEDDING_FIELDS
)
"""SQL-friendly column names of the 27 embedding positions (``stage2_convs_1``)."""

EMBEDDING_TO_CODE = tuple(p for p in range(CODE_LENGTH) if p not in BRANCH_COUNT_POSITIONS)
"""Code position of each embedding position."""


def _code_field_names() -> list[str]:
    names = [name for name, _ in EMBEDDING_FIELDS]
    for k, pos in enumerate(BRANCH_COUNT_POSITIONS, start=1):
        names.insert(pos, f"stage{k}.branches")
    return names


_FIELD_NAMES = {"code": _code_field_names(), "embedding": [n for n, _ in EMBEDDING_FIELDS]}


def _field_name(encoding: str, position: int | None) -> str:
    names = _FIELD_NAMES.get(encoding, [])
    return names[position] if position is not None and position < len(names) else encoding


def _is_collection(value: Any) -> bool:
    """Whether ``value`` holds items (a list, tuple or array), not a string or a number (a
    0-d NumPy array is iterable by type, and raises when iterated)."""
    iterable = isinstance(value, Iterable) and not isinstance(value, str | bytes)
    return iterable and getattr(value, "ndim", 1) != 0


def _as_list(encoding: str, position: int | None, value: Any, allowed: str) -> list[Any]:
    """``value``'s items as a list, or an ArchError when it is not a collection."""
    if not _is_collection(value):
        raise ArchError(encoding, position, value, allowed)
    return list(value)


_MODULE_SHAPE = "[branches, [convs], [channels]]"


def _module(position: int, module: Any) -> tuple[Any, list[Any], list[Any]]:
    """One entry of a network setting as ``(branches, convs, channels)``, or an ArchError."""
    parts = _as_list("setting", position, module, _MODULE_SHAPE)
    if len(parts) != 3 or not all(_is_collection(part) for part in parts[1:]):
        raise ArchError("setting", position, module, _MODULE_SHAPE)
    branches, convs, channels = parts
    return branches, list(convs), list(channels)


def _is_int(value: Any) -> bool:
    """An integer (NumPy's included), not a bool: ``True`` and ``128.0`` equal 1 and 128."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _typed(module: tuple[Any, list[Any], list[Any]]) -> tuple[Any, ...]:
    """A module's values, each with whether it is an integer: the repeats of a stage must
    equal its first module in type too (128.0 is no channel count)."""
    branches, convs, channels = module
    return tuple((_is_int(v), v) for v in (branches, *convs, *channels))


def _check_int(encoding: str, position: int, value: Any, kind: str) -> int:
    """``value`` as a plain int (NumPy's integers included), or an ArchError naming the rule."""
    if not _is_int(value):
        raise ArchError(encoding, position, value, "an integer")
    value = int(value)
    if kind == "channels" and value not in CHANNELS:
        raise ArchError(encoding, position, value, "a multiple of 8 in [8, 128]")
    if kind == "count" and value not in COUNTS:
        raise ArchError(encoding, position, value, "an integer in [1, 4]")
    return value


_CODE_GROUPS = (
    ("stem: c0, c1", 2),
    *(
        (
            f"stage {k}: repeats, branches, each branch's conv count, each branch's channels",
            2 + 2 * k,
        )
        for k in range(1, N_STAGES + 1)
    ),
    ("head: last_channel", 1),
)
"""Name and length of each '-'-separated group of a code string."""


def _token_problem(token: str) -> str | None:
    """Why ``token`` is no int of a code string, as spelled by :attr:`Arch.code`; None if it is."""
    if not (token.isascii() and token.isdigit()):
        spaced = token != token.strip() and token.strip().isdigit()
        return "an integer without whitespace" if spaced else "a non-negative integer"
    if token != (token.lstrip("0") or "0"):
        return "an integer without leading zeros"
    if len(token) > _MAX_DIGITS:  # int() refuses over 4300 digits with a ValueError
        return f"at most {_MAX_DIGITS} digits (no value exceeds {CHANNELS[-1]})"
    return None


@dataclass(frozen=True, slots=True)
class Arch:
    """One architecture of the space; converts losslessly between the encodings."""

    stem: tuple[int, int]
    stages: tuple[Stage, Stage, Stage, Stage]
    last_channel: int

    def __post_init__(self) -> None:
        """Validate every value, and the layout, so that equal architectures are equal Archs;
        NumPy integers are kept as plain ints (an ``np.uint8`` overflows in a FLOPs count)."""
        try:
            rebuilt = Arch.from_embedding(self._embedding_of())
        except ArchError as err:
            field = _field_name("embedding", err.position)
            raise ArchError("Arch", None, err.value, f"{err.allowed} in {field}", field) from None
        if rebuilt != self:
            allowed = "tuples laid out as Arch.from_embedding builds them (stage k has k branches)"
            raise ArchError("Arch", None, self, allowed)
        for name in ("stem", "stages", "last_channel"):
            object.__setattr__(self, name, getattr(rebuilt, name))

    def _embedding_of(self) -> list[int]:
        out = list(self.stem)
        for stage in self.stages:
            out += [stage.repeats, *stage.convs, *stage.channels]
        return [*out, self.last_channel]

    # -- decoding -----------------------------------------------------------------

    @classmethod
    def from_embedding(cls, embedding: Sequence[Any]) -> Arch:
        """Build from the 27-int embedding of ``trainval.pkl``."""
        values = _as_list("embedding", None, embedding, f"{EMBEDDING_LENGTH} ints")
        if len(values) != EMBEDDING_LENGTH:
            allowed = f"{EMBEDDING_LENGTH} ints"
            if len(values) == CODE_LENGTH:
                allowed += f" ({CODE_LENGTH} are a code's: Arch.from_code takes its string)"
            raise ArchError("embedding", None, len(values), allowed)
        values = [
            _check_int("embedding", pos, value, kind)
            for pos, ((_, kind), value) in enumerate(zip(EMBEDDING_FIELDS, values, strict=True))
        ]
        stages = tuple(
            Stage(values[r], tuple(values[p] for p in convs), tuple(values[p] for p in chans))
            for r, convs, chans in STAGE_POSITIONS
        )
        arch = object.__new__(cls)
        object.__setattr__(arch, "stem", (values[0], values[1]))
        object.__setattr__(arch, "stages", stages)
        object.__setattr__(arch, "last_channel", values[-1])
        return arch

    @classmethod
    def from_code(cls, code: str) -> Arch:
        """Build from the 31-int code string of ``search_list.txt``, spelled as :attr:`code` is.

        One architecture has one code, so a space anywhere or a leading zero is an ArchError.
        """
        if not isinstance(code, str):
            raise ArchError("code", None, code, "a string")
        groups = code.split("-")
        if len(groups) != 2 + N_STAGES:
            allowed = f"6 '-'-separated groups of '_'-separated ints, not {len(groups)}"
            raise ArchError("code", None, code, allowed)
        values: list[int] = []
        for number, (group, (name, size)) in enumerate(zip(groups, _CODE_GROUPS, strict=True), 1):
            tokens = group.split("_")
            if len(tokens) != size:
                ints = "1 int" if size == 1 else f"{size} '_'-separated ints"
                allowed = f"{ints} in group {number} ({name})"
                raise ArchError("code", None, group, allowed)
            for token in tokens:
                problem = _token_problem(token)
                if problem:
                    raise ArchError("code", len(values), token, problem)
                values.append(int(token))
        for k, pos in enumerate(BRANCH_COUNT_POSITIONS, start=1):
            if values[pos] != k:
                branches = "1 branch" if k == 1 else f"{k} branches"
                raise ArchError("code", pos, values[pos], f"{k} (stage {k} has {branches})")
        embedding = [v for p, v in enumerate(values) if p not in BRANCH_COUNT_POSITIONS]
        try:
            return cls.from_embedding(embedding)
        except ArchError as err:
            code_pos = EMBEDDING_TO_CODE[err.position] if err.position is not None else None
            raise ArchError("code", code_pos, err.value, err.allowed) from None

    @classmethod
    def from_setting(
        cls, input_channel: Sequence[int], setting: Sequence[Sequence[Any]], last_channel: int
    ) -> Arch:
        """Build from a network setting (one ``[branches, convs, channels]`` per module).

        Stage k is the run of modules with k branches, all the same module. An error names
        the part of the input that is wrong: the module's index in the setting, or the
        ``input_channel`` position, and the field (``stage2.channels[1]``).
        """
        stem = _as_list("input_channel", None, input_channel, "2 ints")
        if len(stem) != 2:
            raise ArchError("input_channel", None, input_channel, "2 ints")
        raw = _as_list("setting", None, setting, f"a list of {_MODULE_SHAPE} modules")
        modules = [_module(i, module) for i, module in enumerate(raw)]
        embedding: list[Any] = stem
        unlike: ArchError | None = None  # raised after the values, which name the field
        source: list[tuple[str, int | None]] = [("input_channel", 0), ("input_channel", 1)]
        i = 0
        for k in range(1, N_STAGES + 1):
            first = i
            while i < len(modules) and _is_int(modules[i][0]) and modules[i][0] == k:
                i += 1
            shape = f"[{k}, {k} convs, {k} channels]"
            if i == first:
                found = raw[i] if i < len(raw) else None
                raise ArchError("setting", i, found, f"a module of stage {k}, {shape}")
            _, convs, chans = modules[first]
            if len(convs) != k or len(chans) != k:
                raise ArchError("setting", first, raw[first], shape)
            for j in range(first + 1, i):
                if _typed(modules[j]) != _typed(modules[first]) and unlike is None:
                    allowed = f"{raw[first]!r} as at position {first} (a stage repeats one module)"
                    unlike = ArchError("setting", j, raw[j], allowed)
            embedding += [i - first, *convs, *chans]
            too_many = first + max(COUNTS)  # where a stage with too many repeats goes wrong
            source += [("setting", too_many)] + [("setting", first)] * (2 * k)
        if i != len(modules):
            raise ArchError("setting", i, raw[i], "no module after stage 4")
        embedding.append(last_channel)
        source.append(("last_channel", None))
        try:
            arch = cls.from_embedding(embedding)
        except ArchError as err:
            assert err.position is not None  # the embedding has 27 values by construction
            encoding, position = source[err.position]
            field = EMBEDDING_FIELDS[err.position][0]
            raise ArchError(encoding, position, err.value, err.allowed, field) from None
        if unlike is not None:
            raise unlike
        return arch

    # -- encodings -----------------------------------------------------------------

    @property
    def embedding(self) -> list[int]:
        """The 27-int embedding (``trainval.pkl``)."""
        return self._embedding_of()

    @property
    def code(self) -> str:
        """The 31-int code string (``search_list.txt``)."""
        groups = ["_".join(map(str, self.stem))]
        for k, stage in enumerate(self.stages, start=1):
            groups.append("_".join(map(str, [stage.repeats, k, *stage.convs, *stage.channels])))
        groups.append(str(self.last_channel))
        return "-".join(groups)

    @property
    def input_channel(self) -> list[int]:
        """The two stem widths, as ``trainval.pkl`` records them."""
        return list(self.stem)

    @property
    def setting(self) -> list[list[Any]]:
        """The network setting: one ``[branches, [convs], [channels]]`` entry per module."""
        return [
            [stage.branches, list(stage.convs), list(stage.channels)]
            for stage in self.stages
            for _ in range(stage.repeats)
        ]

    # -- derived -------------------------------------------------------------------

    @property
    def n_modules(self) -> int:
        """Modules in the whole network (entries of the network setting)."""
        return sum(stage.repeats for stage in self.stages)

    @property
    def n_blocks(self) -> int:
        """Residual basic blocks in the whole network."""
        return sum(stage.repeats * sum(stage.convs) for stage in self.stages)

    def neighbours(self) -> Iterator[Arch]:
        """Every architecture that differs from this one in exactly one embedding position."""
        base = self.embedding
        for pos, (_, kind) in enumerate(EMBEDDING_FIELDS):
            for value in CHANNELS if kind == "channels" else COUNTS:
                if value != base[pos]:
                    yield Arch.from_embedding([*base[:pos], value, *base[pos + 1 :]])

    def __str__(self) -> str:
        return self.code


def domain(position: int) -> tuple[int, ...]:
    """The allowed values of one embedding position."""
    return CHANNELS if EMBEDDING_FIELDS[position][1] == "channels" else COUNTS


def as_arch(item: Arch | str) -> Arch:
    """``item`` itself, or the architecture of a code string (an ArchError if it is none)."""
    return item if isinstance(item, Arch) else Arch.from_code(item)


def sample(n: int, seed: int) -> list[Arch]:
    """``n`` architectures drawn uniformly at random from the whole space."""
    if n < 0:
        raise ValueError(f"sample: n must be >= 0, got {n}")
    if not _is_int(seed) or seed < 0:  # random.Random takes -1 as 1, and None as the clock
        raise ValueError(f"sample: seed must be an integer >= 0, got {seed!r}")
    rng = random.Random(int(seed))
    return [
        Arch.from_embedding([rng.choice(domain(p)) for p in range(EMBEDDING_LENGTH)])
        for _ in range(n)
    ]


def snap(values: Sequence[float]) -> Arch:
    """The valid architecture nearest to a real-valued embedding (clamp, then round)."""
    reals = _as_list("embedding", None, values, f"{EMBEDDING_LENGTH} numbers")
    if len(reals) != EMBEDDING_LENGTH:
        raise ArchError("embedding", None, len(reals), f"{EMBEDDING_LENGTH} numbers")
    out = []
    for pos, value in enumerate(reals):
        # no value is nearest to NaN (min() would pick the first); "96" and True are no numbers
        real = isinstance(value, numbers.Real | Decimal) and not isinstance(value, bool)
        if not real or (value.is_nan() if isinstance(value, Decimal) else value != value):
            raise ArchError("embedding", pos, value, "a real number")
        allowed = domain(pos)
        # clamp first: 10**400 has no float, and past ~1e17 every choice is equally far
        clamped = float(min(max(value, allowed[0]), allowed[-1]))
        out.append(min(allowed, key=lambda a, v=clamped: (abs(a - v), a)))
    return Arch.from_embedding(out)
