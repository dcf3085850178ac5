"""The architecture space: every encoding round-trips, bad encodings name the position."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nasmr.rawdrop import load_pickle, read_search_list, trainval_path
from nasmr.space import EMBEDDING_LENGTH, Arch, ArchError, Stage, domain, sample, snap
from schemas.settings import MR_SETTINGS

SMALLEST = "8_8-1_1_1_8-1_2_1_1_8_8-1_3_1_1_1_8_8_8-1_4_1_1_1_1_8_8_8_8-8"


def _round_trips(arch: Arch) -> None:
    assert Arch.from_code(arch.code) == arch
    assert Arch.from_embedding(arch.embedding) == arch
    assert Arch.from_setting(arch.input_channel, arch.setting, arch.last_channel) == arch
    assert len(arch.setting) == arch.n_modules


def test_every_search_list_code_round_trips(raw_dir: Path) -> None:
    codes = [line.text for line in read_search_list(raw_dir)]
    assert len(codes) == 2511
    for code in codes:
        arch = Arch.from_code(code)
        assert arch.code == code
        _round_trips(arch)


def test_every_published_record_agrees_with_itself_and_the_search_list(raw_dir: Path) -> None:
    codes = {line.text for line in read_search_list(raw_dir)}
    settings = [s for s in MR_SETTINGS if trainval_path(raw_dir, s).is_file()]
    assert len(settings) == 8  # 3ddet's results were never published
    for setting in settings:
        records = load_pickle(trainval_path(raw_dir, setting))
        assert len(records) == 2507
        for record in records:
            arch = Arch.from_embedding(record["embedding"])
            assert arch.setting == record["inverted_residual_setting"], setting
            assert arch.input_channel == record["input_channel"], setting
            assert arch.last_channel == record["last_channel"], setting
            assert arch.code in codes, setting


def test_sampled_architectures_round_trip() -> None:
    archs = sample(500, seed=0)
    assert sample(500, seed=0) == archs and len(set(archs)) == 500
    assert sample(0, seed=0) == []
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        sample(-1, seed=0)
    for arch in archs:
        _round_trips(arch)


def test_direct_construction_is_the_canonical_arch_or_refused() -> None:
    """Built field by field, an Arch equals and hashes as its decoded twin; lists are refused."""
    arch = sample(1, seed=4)[0]
    direct = Arch(arch.stem, arch.stages, arch.last_channel)
    assert direct == arch and hash(direct) == hash(arch)
    first = arch.stages[0]
    for stem, stages in [
        (list(arch.stem), arch.stages),
        (arch.stem, list(arch.stages)),
        (arch.stem, (Stage(first.repeats, list(first.convs), first.channels), *arch.stages[1:])),
    ]:
        with pytest.raises(ArchError, match=r"expected tuples laid out as Arch\.from_embedding"):
            Arch(stem, stages, arch.last_channel)  # type: ignore[arg-type]


def test_numpy_integers_are_integers() -> None:
    """An embedding taken from an array (a warehouse frame's ``to_numpy()``) is accepted."""
    arch = sample(1, seed=2)[0]
    from_array = Arch.from_embedding(np.array(arch.embedding))
    assert from_array == arch
    assert json.loads(json.dumps(from_array.embedding)) == arch.embedding  # plain ints
    with pytest.raises(ArchError, match="expected an integer"):
        Arch.from_embedding(np.array(arch.embedding, dtype=float))


def test_neighbours_differ_in_exactly_one_position() -> None:
    arch = Arch.from_code(SMALLEST)
    neighbours = list(arch.neighbours())
    changes = sum(len(domain(p)) - 1 for p in range(EMBEDDING_LENGTH))
    assert len(neighbours) == len(set(neighbours)) == changes == 13 * 15 + 14 * 3
    for other in neighbours:
        assert sum(a != b for a, b in zip(arch.embedding, other.embedding, strict=True)) == 1


def test_snap_clamps_rounds_and_breaks_ties_downwards() -> None:
    arch = sample(1, seed=5)[0]
    assert snap([v + 0.4 for v in arch.embedding]) == arch
    low = snap([-100.0] * EMBEDDING_LENGTH).embedding
    high = snap([1000.0] * EMBEDDING_LENGTH).embedding
    assert low == [domain(p)[0] for p in range(EMBEDDING_LENGTH)]
    assert high == [domain(p)[-1] for p in range(EMBEDDING_LENGTH)]
    for huge in (1e300, math.inf):  # every choice is equally far in floats: clamp first
        assert snap([huge] * EMBEDDING_LENGTH).embedding == high
        assert snap([-huge] * EMBEDDING_LENGTH).embedding == low
    halfway = snap([12.0, 12.0, 2.5, *arch.embedding[3:]]).embedding
    assert halfway[:3] == [8, 8, 2]


def test_snap_refuses_what_has_no_nearest_architecture() -> None:
    arch = sample(1, seed=5)[0]
    with pytest.raises(ArchError, match="invalid embedding: value 28, expected 27 numbers"):
        snap([*arch.embedding, 8.0])
    with pytest.raises(ArchError, match=r"position 3 \(stage1.convs\[0\]\) value nan"):
        snap([*arch.embedding[:3], float("nan"), *arch.embedding[4:]])
    for odd in ("96", True, None, 1 + 2j, [1], Decimal("sNaN")):  # "96", True: 96 and 1
        with pytest.raises(ArchError, match="expected a real number"):
            snap([odd, *arch.embedding[1:]])
    assert snap([10**400, *arch.embedding[1:]]).stem[0] == 128  # float() overflowed
    assert snap([Decimal("95.9"), *arch.embedding[1:]]).stem[0] == 96


@pytest.mark.parametrize(
    ("code", "names"),
    [
        ("8_8-1_1_1_8", ["6 '-'-separated groups"]),
        (SMALLEST.replace("8_8-", "8_x-", 1), ["position 1 (stem.c1)", "'x'"]),
        (SMALLEST.replace("8_8-", "8_²-", 1), ["position 1 (stem.c1)", "non-negative integer"]),
        (SMALLEST.replace("8_8-", "8_-8-", 1), ["6 '-'-separated groups"]),
        (SMALLEST.replace("1_2_1_1", "1_3_1_1", 1), ["position 7 (stage2.branches)"]),
        (SMALLEST.replace("8_8-", "12_8-", 1), ["position 0 (stem.c0)", "multiple of 8"]),
        (SMALLEST.replace("-1_1_1_8-", "-5_1_1_8-", 1), ["stage1.repeats", "[1, 4]"]),
        (SMALLEST[:-1] + "136", ["position 30 (last_channel)", "multiple of 8"]),
        ("0" + SMALLEST, ["position 0 (stem.c0)", "'08'", "without leading zeros"]),
        (SMALLEST.replace("-1_1_1_8-", "-1_1_01_8-", 1), ["position 4 (stage1.convs[0])", "'01'"]),
        (" " + SMALLEST, ["position 0 (stem.c0)", "' 8'", "without whitespace"]),
        (SMALLEST + " ", ["position 30 (last_channel)", "'8 '", "without whitespace"]),
        (SMALLEST.replace("-1_2_1_1_8_8-", "-1_2_1_8_8-", 1), ["'1_2_1_8_8'", "6 '_'-sep"]),
        (SMALLEST.replace("-1_2_1_1_8_8-", "-1_2_1_8_8-", 1), ["group 3 (stage 2: repeats"]),
        (SMALLEST + "\n", ["position 30 (last_channel)", "'8\\n'"]),
        (SMALLEST.replace("8_8-", "8_ 8-", 1), ["position 1 (stem.c1)", "' 8'"]),
        (SMALLEST.replace("-1_1_1_8-", "-1_1_1_0-", 1), ["channels[0]) value 0, expected"]),
        (SMALLEST.replace("-1_1_1_8-", "-1_1_1_1000-", 1), ["position 5", "at most 3 digits"]),
        ("9" * 5000 + SMALLEST[1:], ["position 0 (stem.c0)", "at most 3 digits"]),
    ],
)
def test_bad_codes_name_the_position_and_the_rule(code: str, names: list[str]) -> None:
    """Only the spelling ``Arch.code`` writes is a code: one architecture, one key."""
    with pytest.raises(ArchError) as err:
        Arch.from_code(code)
    for name in names:
        assert name in str(err.value)


def test_bad_embeddings_and_settings_are_refused() -> None:
    arch = Arch.from_code(SMALLEST)
    with pytest.raises(ArchError, match="27 ints"):
        Arch.from_embedding(arch.embedding[:-1])
    code_ints = [int(v) for v in arch.code.replace("-", "_").split("_")]
    with pytest.raises(ArchError, match=r"27 ints \(31 are a code's: Arch.from_code takes"):
        Arch.from_embedding(code_ints)
    with pytest.raises(ArchError, match=r"position 2 \(stage1.repeats\).*an integer"):
        Arch.from_embedding([8, 8, True, *arch.embedding[3:]])
    with pytest.raises(ArchError, match="no module after stage 4"):
        Arch.from_setting(arch.input_channel, [*arch.setting, [1, [1], [8]]], arch.last_channel)
    with pytest.raises(ArchError, match="a module of stage 4"):
        Arch.from_setting(arch.input_channel, arch.setting[:3], arch.last_channel)


_ARCH = Arch.from_code(SMALLEST)


_TWOS = Arch.from_code("8_16-1_1_2_24-2_2_1_3_32_40-1_3_1_1_1_48_56_64-2_4_1_2_3_4_72_80_88_96-104")


def _setting_with(module: int, part: int, branch: int, value: int) -> list[list[Any]]:
    """The setting of ``_TWOS`` (stages 2 and 4 repeat their module) with one value changed."""
    setting = _TWOS.setting
    setting[module][part][branch] = value
    return setting


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Arch.from_setting([8, 16], _setting_with(1, 2, 1, 44), 104),
         "invalid setting: position 1 (stage2.channels[1]) value 44, expected a multiple of 8"),
        (lambda: Arch.from_setting([8, 16], _setting_with(4, 1, 2, 5), 104),
         "invalid setting: position 4 (stage4.convs[2]) value 5, expected an integer in [1, 4]"),
        (lambda: Arch.from_setting([8, 16], [[1, [2], [24]]] * 4 + _TWOS.setting, 104),
         "invalid setting: position 4 (stage1.repeats) value 5, expected an integer in [1, 4]"),
        (lambda: Arch.from_setting([8, 12], _TWOS.setting, 104),
         "invalid input_channel: position 1 (stem.c1) value 12, expected a multiple of 8"),
        (lambda: Arch.from_setting([8, 16], _TWOS.setting, 100),
         "invalid last_channel: value 100, expected a multiple of 8"),
        (lambda: Arch.from_setting([8, 16], _setting_with(2, 2, 0, 40), 104),
         "invalid setting: position 2 (setting) value [2, [1, 3], [40, 40]], expected "
         "[2, [1, 3], [32, 40]] as at position 1 (a stage repeats one module)"),
        (lambda: Arch.from_setting([8, 16], _setting_with(5, 1, 0, 2), 104),
         "invalid setting: position 5 (setting) value [4, [2, 2, 3, 4], [72, 80, 88, 96]], "
         "expected [4, [1, 2, 3, 4], [72, 80, 88, 96]] as at position 4"),
    ],
    ids=["channels", "convs", "repeats", "stem", "last", "repeat-differs", "last-repeat-differs"],
)  # fmt: skip
def test_bad_settings_name_the_module_and_the_field(
    build: Callable[[], Arch], message: str
) -> None:
    """A wrong value is named where it stands in the setting, not at an embedding position."""
    with pytest.raises(ArchError) as err:
        build()
    assert message in str(err.value)


MALFORMED: list[tuple[str, Callable[[], Arch], str]] = [
    ("int-input-channel", lambda: Arch.from_setting(8, _ARCH.setting, 8),  # type: ignore[arg-type]
     "invalid input_channel: value 8, expected 2 ints"),
    ("int-setting", lambda: Arch.from_setting([8, 8], 8, 8),  # type: ignore[arg-type]
     "invalid setting: value 8, expected a list of [branches, [convs], [channels]] modules"),
    ("int-convs", lambda: Arch.from_setting([8, 8], [[1, 1, [8]], *_ARCH.setting[1:]], 8),
     "invalid setting: position 0 (setting) value [1, 1, [8]], expected [branches, [convs]"),
    ("int-module", lambda: Arch.from_setting([8, 8], [*_ARCH.setting[:2], 5], 8),
     "invalid setting: position 2 (setting) value 5, expected [branches, [convs], [channels]]"),
    ("str-module", lambda: Arch.from_setting([8, 8], ["1_1_8", *_ARCH.setting[1:]], 8),
     "invalid setting: position 0 (setting) value '1_1_8', expected [branches"),
    ("int-embedding", lambda: Arch.from_embedding(8),  # type: ignore[arg-type]
     "invalid embedding: value 8, expected 27 ints"),
    ("0-d-array-embedding", lambda: Arch.from_embedding(np.array(5)),
     "invalid embedding: value array(5), expected 27 ints"),
    ("0-d-array-module", lambda: Arch.from_setting([8, 8], [np.array(3), *_ARCH.setting[1:]], 8),
     "invalid setting: position 0 (setting) value array(3), expected [branches"),
    ("float-in-a-repeat", lambda: Arch.from_setting([8, 16], _setting_with(5, 2, 0, 72.0), 104),
     "invalid setting: position 5 (setting) value [4, [1, 2, 3, 4], [72.0, 80, 88, 96]], expected "
     "[4, [1, 2, 3, 4], [72, 80, 88, 96]] as at position 4"),
    ("bool-branches", lambda: Arch.from_setting([8, 8], [[True, [1], [8]], *_ARCH.setting[1:]], 8),
     "invalid setting: position 0 (setting) value [True, [1], [8]], expected a module of stage 1"),
    ("bad-stem-of-arch", lambda: Arch((96, 7), _ARCH.stages, 8),
     "invalid Arch: value 7, expected a multiple of 8 in [8, 128] in stem.c1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("build", "message"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_encodings_raise_arch_error_naming_the_part(
    build: Callable[[], Arch], message: str
) -> None:
    """A number or string where a list belongs is an ArchError, not a TypeError from len()."""
    with pytest.raises(ArchError) as err:
        build()
    assert message in str(err.value)


def test_numpy_integers_make_an_arch_of_plain_ints() -> None:
    """Built directly from NumPy integers, an Arch kept them: its embedding was no JSON, and
    with np.uint8 its FLOPs count overflowed without an error."""
    from nasmr.complexity import analytic_complexity

    arch = Arch.from_code(_TWOS.code)
    stages = tuple(
        Stage(np.uint8(s.repeats), tuple(map(np.uint8, s.convs)), tuple(map(np.uint8, s.channels)))
        for s in arch.stages
    )
    built = Arch((np.uint8(8), np.uint8(16)), stages, np.uint8(104))  # type: ignore[arg-type]
    assert built == arch and json.dumps(built.embedding) == json.dumps(arch.embedding)
    assert all(type(v) is int for v in built.embedding)
    assert analytic_complexity(built) == analytic_complexity(arch)


def test_arch_errors_name_their_field_as_an_attribute_too() -> None:
    """The message named the field of a code or embedding position; ``.field`` was None."""
    with pytest.raises(ArchError) as err:
        Arch.from_code(SMALLEST.replace("-1_1_1_8-", "-1_1_5_8-", 1))
    assert (err.value.position, err.value.field) == (4, "stage1.convs[0]")
    with pytest.raises(ArchError) as err:
        Arch((96, 7), _ARCH.stages, 8)
    assert err.value.field == "stem.c1"
    with pytest.raises(ArchError, match=r"\(stage 1 has 1 branch\)"):
        Arch.from_code(SMALLEST.replace("-1_1_1_8-", "-1_2_1_8-", 1))
    with pytest.raises(ArchError, match="6 '-'-separated groups of '_'-separated ints, not 7"):
        Arch.from_code("-" + SMALLEST)


def test_sample_refuses_a_seed_random_would_take_as_another() -> None:
    """random.Random(-1) draws as random.Random(1), and None draws from the clock."""
    for seed in (-1, None, 1.5):
        with pytest.raises(ValueError, match="seed must be an integer >= 0"):
            sample(3, seed)  # type: ignore[arg-type]
    assert sample(3, np.int64(7)) == sample(3, 7)


def test_arch_error_crosses_a_process_pool() -> None:
    """A worker's ArchError reaches the caller as itself, not as a broken pool."""
    bad = SMALLEST.replace("-1_1_1_8-", "-1_1_1_9-", 1)
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        future = pool.submit(Arch.from_code, bad)
        with pytest.raises(ArchError, match=r"position 5 \(stage1.channels\[0\]\) value 9") as err:
            future.result()
    assert (err.value.encoding, err.value.position, err.value.value) == ("code", 5, 9)
