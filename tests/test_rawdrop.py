"""The raw-drop loader refuses code, names the file, and reads what the drop really holds."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from nasmr.cli import main
from nasmr.rawdrop import (
    STAND_INS,
    NotInDropError,
    RawDropError,
    load_pickle,
    read_search_list,
    require_drop,
)
from nasmr.shown import shown
from tests.drops import Exploit, refuse_open, write_drop


def _write(path: Path, payload: bytes) -> Path:
    path.write_bytes(payload)
    return path


def test_malicious_pickle_is_refused_before_it_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "trainval.pkl", pickle.dumps([{"x": Exploit(marker)}]))
    with pytest.raises(RawDropError) as err:
        load_pickle(path)
    assert not marker.exists()
    assert str(path) in str(err.value)
    assert f"refused global {os.system.__module__}.system" in str(err.value)


RECORDS = pickle.dumps([{"mIoU": float(i)} for i in range(50)], protocol=4)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "file is empty"),
        (RECORDS[:-20], "ends before the pickle's end (truncated?)"),
        (RECORDS[: len(RECORDS) // 2], "ends before the pickle's end (truncated?)"),
        (pickle.dumps([{"mIoU": 1.0}], protocol=0)[:-3], "ends before the pickle's end"),
        (
            b"this is not a pickle",
            "is not a pickle (starts with bytes 74 68 69 73 20 69 73 20; text?)",
        ),
        (gzip.compress(RECORDS), "is not a pickle (starts with bytes 1f 8b 08 00"),
        (gzip.compress(RECORDS), "; gzip-compressed?)"),
        (b"\x00\x01\x02\x03" * 4, "is not a pickle (starts with bytes 00 01 02 03 00 01 02 03)"),
        (RECORDS[:2] + b"\xff" + RECORDS[2:], "not a readable pickle (KeyError: 255)"),
        (pickle.dumps({"mIoU": 1.0}), "expected a list of records, found dict"),
    ],
    ids=[
        "empty",
        "truncated-end",
        "truncated-in-a-frame",
        "truncated-protocol-0",
        "text",
        "gzip",
        "gzip-hint",
        "binary",
        "unknown-opcode",
        "not-a-list",
    ],
)
def test_unreadable_files_name_file_and_reason(tmp_path: Path, payload: bytes, reason: str) -> None:
    """Whole-file failures read as the Python exception ('IndexError: index out of range'
    for a truncated file, 'KeyError: 31' for a gzip'd one); they say what is wrong now,
    with the exception only where no plainer reason is known."""
    path = _write(tmp_path / "trainval.pkl", payload)
    with pytest.raises(RawDropError) as err:
        load_pickle(path)
    assert str(err.value).startswith(f"{path}: ")
    assert reason in str(err.value)


def test_size_cap_refuses_before_reading(tmp_path: Path) -> None:
    path = _write(tmp_path / "trainval.pkl", pickle.dumps(list(range(1000))))
    with pytest.raises(RawDropError, match="exceeds the 100-byte limit"):
        load_pickle(path, max_bytes=100)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RawDropError, match="file not found"):
        load_pickle(tmp_path / "nope.pkl")
    with pytest.raises(RawDropError, match=r"search_list\.txt: file not found"):
        read_search_list(tmp_path)


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_numpy_arrays_load(tmp_path: Path, protocol: int) -> None:
    """The drop's nas-bench-201 file is protocol 4; protocol 2 would need ``_codecs.encode``,
    and protocol 5 (pickle's highest, which NumPy rebuilds with ``_frombuffer``) was refused."""
    records = [{"embedding": np.eye(5, dtype=np.float32).ravel(), "Acc": 40.0}]
    path = _write(tmp_path / "trainval.pkl", pickle.dumps(records, protocol=protocol))
    loaded = load_pickle(path)
    np.testing.assert_array_equal(loaded[0]["embedding"], records[0]["embedding"])
    assert loaded[0]["embedding"].dtype == np.float32


class _ForgedDType:
    """Pickles as ``numpy.dtype('V8')`` with an object field overlapping an int field."""

    def __reduce__(self) -> tuple[object, ...]:
        fields = {"a": (np.dtype("O"), 0), "b": (np.dtype("<i8"), 0)}
        return np.dtype, ("V8", False, True), (3, "|", None, ("a", "b"), fields, 8, -1, 27)


class _ForgedArray:
    """Pickles as an array of that dtype whose state plants an arbitrary pointer."""

    def __reduce__(self) -> tuple[object, ...]:
        reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
        state = (1, (1,), _ForgedDType(), False, [("x", 0x4141414141)])
        return reconstruct, (np.ndarray, (0,), b"b"), state


class _HollowArray:
    """Pickles as a float32 array that claims ``n`` items but carries 8 bytes."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __reduce__(self) -> tuple[object, ...]:
        reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
        state = (1, (self.n,), np.dtype("float32"), False, b"\0" * 8)
        return reconstruct, (np.ndarray, (0,), b"b"), state


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_ForgedArray(), "array dtype 'V8' is not a plain numeric type"),
        (_HollowArray(5_000_000_000), "needs 20000000000 bytes, got 8"),
    ],
    ids=["forged-dtype", "shape-beyond-the-file"],
)
def test_allowed_numpy_names_cannot_forge_arrays(
    tmp_path: Path, payload: object, reason: str
) -> None:
    """Only NumPy's array names are allowed, and even they build plain arrays from real bytes."""
    path = _write(tmp_path / "trainval.pkl", pickle.dumps([{"embedding": payload}], protocol=4))
    with pytest.raises(RawDropError, match=reason) as err:
        load_pickle(path)
    assert str(err.value).startswith(f"{path}: not a readable pickle")


def test_numpy_scalars_load_as_numpy_scalars(tmp_path: Path) -> None:
    records = [{"mIoU": np.float64(61.5), "top1": np.float32(0.25), "n": np.int64(3)}]
    loaded = load_pickle(_write(tmp_path / "trainval.pkl", pickle.dumps(records, protocol=4)))
    assert loaded == records
    assert [type(v) for v in loaded[0].values()] == [np.float64, np.float32, np.int64]


def test_arrays_below_a_record_field_print_as_arrays(tmp_path: Path) -> None:
    """Quarantine reasons quote rejected values, so a nested array must not print an address."""
    records = [{"Params": [np.zeros(2)]}]
    loaded = load_pickle(_write(tmp_path / "trainval.pkl", pickle.dumps(records, protocol=4)))
    assert repr(loaded[0]["Params"]) == "[array([0., 0.])]"


class _NoState:
    """Pickles as an array that never gets its data (no state after ``_reconstruct``)."""

    def __reduce__(self) -> tuple[object, ...]:
        return np.ndarray.__reduce__(np.zeros(1))[0], (np.ndarray, (0,), b"b")


def test_loader_objects_print_the_same_on_every_run(tmp_path: Path) -> None:
    """Quarantine reasons quote rejected values: a stand-in printing its memory address made
    the tables, and so the release, differ from run to run. An array without its data
    fails its record, not the whole file."""
    scalar = np.float64(1.0).__reduce__()[0]  # NumPy's own function, as a value
    records = [{"mIoU": np.dtype("f8"), "aAcc": scalar, "e": _NoState()}]
    loaded = load_pickle(_write(tmp_path / "trainval.pkl", pickle.dumps(records, protocol=4)))
    shown = {key: repr(value) for key, value in loaded[0].items()}
    assert shown == {
        "mIoU": "dtype('<f8')",
        "aAcc": "numpy.multiarray.scalar",
        "e": "<array without its data>",
    }


def test_a_second_pickle_in_the_file_fails_it(tmp_path: Path) -> None:
    """Loading stopped at the first pickle's end: records appended by a second
    ``pickle.dump`` were neither valid nor quarantined, and the file reported ok."""
    payload = pickle.dumps([{"mIoU": 1.0}]) + pickle.dumps([{"mIoU": 2.0}])
    path = _write(tmp_path / "trainval.pkl", payload)
    with pytest.raises(RawDropError, match=r"\d+ byte\(s\) after the end of the pickle"):
        load_pickle(path)


def _keyed(key: bytes) -> bytes:
    """A protocol-4 pickle of ``[{key: 1}]``, the key's opcodes given."""
    return b"\x80\x04]}" + key + b"K\x01sa."


DEEP_KEY = b"K\x00" + b"\x85" * 300_000
"""0, then TUPLE1 again and again: a tuple 300,000 deep."""

SHARED_KEY = b"K\x00\x940" + b"0".join(
    b"h%ch%c\x86\x94" % (i, i) for i in range(90)
)  # 0, then t = (t, t) 90 times from the memo (BINGET, TUPLE2, MEMOIZE; POP between)
"""A tuple 90 deep whose hash visits 2**90 items."""


INT_KEYS = (
    b"("
    + b"".join(
        b"\x8a\x08" + (j * (2**61 - 1) + 1).to_bytes(8, "little") + b"N" for j in range(1, 8)
    )
    + b"d"
)
"""A DICT of ints that all hash to 1 (inserting n of them takes n**2 steps)."""


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (DEEP_KEY, r"dict key \(\(\(\(\.\.\.\),\),\),\): a drop's keys are strings"),
        (SHARED_KEY, r"dict key \(\(\(\(\.\.\.\), \(\.\.\.\)\),"),
        (b"\x8c\x65" + b"k" * 101, r"dict key 'kkk.*: a drop's keys are strings of at most 100"),
    ],
    ids=["300,000 deep", "(t, t) 90 times", "101 characters"],
)
def test_a_key_that_is_no_short_string_is_refused(tmp_path: Path, key: bytes, reason: str) -> None:
    """A dict key nested 300,000 tuples deep (a 300 KB file, no global) overflowed the C
    stack when hashed and killed the process; one built as t = (t, t) 90 times (a few
    hundred bytes) hashed for ever; a long string key was copied into every error."""
    with pytest.raises(RawDropError, match=reason):
        load_pickle(_write(tmp_path / "trainval.pkl", _keyed(key)))
    assert load_pickle(_write(tmp_path / "ok.pkl", _keyed(b"\x8c\x64" + b"k" * 100))) == [
        {"k" * 100: 1}
    ]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (pickle.dumps([{"mIoU": 10**5000}], protocol=4), "an integer of 16610 bits: a drop's"),
        (b"\x80\x04]" + INT_KEYS + b"a.", r"dict key 2305843009213693952: a drop's keys are"),
        (pickle.dumps([{"e": {1.0, 2.0}}], protocol=4), "refused opcode EMPTY_SET"),
        (pickle.dumps([0] * 100_001, protocol=4), "100001 records, more than the 100000"),
    ],
    ids=["huge int", "colliding int keys", "a set", "too many records"],
)
def test_what_a_small_file_could_make_expensive_is_refused(
    tmp_path: Path, payload: bytes, reason: str
) -> None:
    """Each made load or validation time or memory grow far faster than the file: an int
    of 5,000 digits in an array shape took 30 s for 12 KB, ints sharing one hash made
    inserts quadratic, a set's order changed its quarantine text from run to run."""
    with pytest.raises(RawDropError, match=reason):
        load_pickle(_write(tmp_path / "trainval.pkl", payload))


def test_a_bytearray_loads_as_bytes_once(tmp_path: Path) -> None:
    """Each protocol-5 array copied the bytearray it was built from: one 10 MB buffer shared
    by a thousand arrays took 10 GB. It is bytes now, and arrays view it."""
    payload = pickle.dumps([{"b": bytearray(b"ab")}], protocol=5)
    [loaded] = load_pickle(_write(tmp_path / "trainval.pkl", payload))
    assert type(loaded["b"]) is bytes and loaded["b"] == b"ab"


def test_shown_values_stay_short_whatever_their_size() -> None:
    """Error messages quote rejected values: reprlib sorted every key of a dict and printed
    all of a bytes value or a nested array before cutting the text."""
    assert shown({i: 0 for i in range(1_000_000, 0, -1)}, 30) == "{1000000: 0, 999999: 0, 999998..."
    assert shown(b"x" * 10_000_000, 20) == "b'xxxxxxxxxxxxxxxxxx..."
    assert shown(np.zeros((2,) * 20), 200) == f"array(shape={(2,) * 20}, dtype=float64)"
    huge = np.array([[10**5000]] * 27, dtype=object)
    assert shown(huge, 60) == "array([[<an integer of 16610 bits>], [<an integer of 16610 b..."


NDARRAY = b"\x8c\x05numpy\x8c\x07ndarray\x93"
"""SHORT_BINUNICODE twice and STACK_GLOBAL: the allowed global numpy.ndarray."""


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x80\x04" + NDARRAY + b")\x81.", "refused opcode NEWOBJ"),
        (b"\x80\x04" + NDARRAY + b"}\x8c\x01x\x8c\x01ysb.", "refused setting the state of"),
        (b"\x80\x05\x95\x04\x00\x00\x00\x00\x00\x00\x00].K\x01", "2 byte\\(s\\) after the end"),
    ],
    ids=["object without __init__", "attributes of a global", "bytes after STOP in a frame"],
)
def test_what_no_drop_needs_is_refused(tmp_path: Path, payload: bytes, reason: str) -> None:
    """NEWOBJ made a dtype stand-in whose repr printed an address; BUILD on an allowed global
    changed the loader for every later file (and, on a writable array, read process
    memory); bytes hidden after STOP in the last frame were left unread."""
    path = _write(tmp_path / "trainval.pkl", payload)
    with pytest.raises(RawDropError, match=reason):
        load_pickle(path)
    assert repr(STAND_INS["numpy", "ndarray"]) == "<class 'nasmr.rawdrop._NDArray'>"


def test_search_list_skips_blank_lines_but_counts_them(tmp_path: Path) -> None:
    """Each code keeps the 0-based number of its line, so a rejected one can be found."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "search_list.txt").write_text("a\n\n  b  \r\n \t\nc\n\n")
    assert read_search_list(tmp_path) == [(0, "a", None), (2, "b", None), (4, "c", None)]


def test_real_drop_reads_with_the_allow_list(raw_dir: Path) -> None:
    records = load_pickle(raw_dir / "data" / "nas-bench-201" / "trainval.pkl")
    assert len(records) == 15625
    assert records[0]["embedding"].shape == (30,)
    lines = read_search_list(raw_dir)
    assert [line.index for line in lines] == list(range(2511))


def test_a_search_list_that_is_no_readable_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory in its place read 'file not found', and no read permission raised a bare
    PermissionError; nothing at the path is the one error callers may take as 'missing'."""
    path = tmp_path / "data" / "search_list.txt"
    with pytest.raises(NotInDropError, match=r"search_list\.txt: file not found"):
        read_search_list(tmp_path)
    path.mkdir(parents=True)
    with pytest.raises(RawDropError, match=r"search_list\.txt: is a directory, not a file"):
        read_search_list(tmp_path)
    path.rmdir()
    path.write_text("16_16\n")

    refuse_open(monkeypatch, path)
    with pytest.raises(RawDropError) as err:
        read_search_list(tmp_path)
    assert str(err.value) == f"{path}: cannot be read (Permission denied)"
    assert not isinstance(err.value, NotInDropError)


@pytest.mark.parametrize(
    ("text", "reason"),
    [(b"", "file is empty"), (b"\n \r\n\t\n", "holds no codes, only blank lines")],
    ids=["empty", "blank lines"],
)
def test_a_search_list_without_codes_fails(tmp_path: Path, text: bytes, reason: str) -> None:
    """It read 0 codes, reported 'ok', and every result was quarantined as outside it."""
    path = tmp_path / "data" / "search_list.txt"
    path.parent.mkdir()
    path.write_bytes(text)
    with pytest.raises(RawDropError) as err:
        read_search_list(tmp_path)
    assert str(err.value) == f"{path}: {reason}"


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("parent/drop/data", "parent/drop"),
        ("parent/drop/data/search_list.txt", "parent/drop"),
        ("parent/drop/data/seg/trainval.pkl", "parent/drop"),
        ("parent", "parent/drop"),
        ("elsewhere", None),
    ],
)
def test_a_path_beside_the_drop_is_refused_with_the_drop_it_likely_meant(
    tmp_path: Path, given: str, meant: str | None
) -> None:
    """``--raw`` one folder too deep (``data/``, a file) or too shallow is the likely slip:
    the refusal names the drop, and suggests nothing where no drop is near."""
    write_drop(tmp_path / "parent" / "drop", {"seg": b"not read"}, ["1_2"])
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(NotInDropError) as err:
        require_drop(tmp_path / given)
    message = str(err.value)
    assert message.startswith(f"raw drop not found at {tmp_path / given} ")
    if meant is None:
        assert "did you mean" not in message
    else:
        assert f"(did you mean {tmp_path / meant}?)" in message


def test_an_unreadable_folder_near_the_path_suggests_nothing_of_it_and_does_not_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Looking for the drop beside a mistyped ``--raw`` stats folders the user never named:
    one without search permission (``data/`` of the folder holding the path, or a sibling of
    the drop) raised a bare PermissionError out of the refusal, or hid the drop beside it."""
    drop = write_drop(tmp_path / "parent" / "drop", {"seg": b"not read"}, ["1_2"])
    locked = [tmp_path / "data", tmp_path / "parent" / "locked"]
    for folder in locked:
        folder.mkdir()
    real_stat = Path.stat

    def guarded_stat(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self.parent in locked or self.parent.parent in locked:  # tests run as root
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", guarded_stat)
    with pytest.raises(NotInDropError) as err:
        require_drop(tmp_path / "mistyped")
    assert "did you mean" not in str(err.value)
    with pytest.raises(NotInDropError) as err:
        require_drop(tmp_path / "parent")
    assert f"(did you mean {drop}?)" in str(err.value)


@pytest.mark.parametrize("given", [".", "..", "link", "link/seg"])
def test_a_relative_or_linked_path_inside_the_drop_is_refused_with_the_drop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    """The folders holding ``--raw`` were its spelling's parents: ``.`` in a setting's folder
    has none, ``..`` only ``.``, and a link to ``data/`` the link's own folder, so the drop
    holding the folder the path names went unsuggested."""
    drop = write_drop(tmp_path / "drop", {"seg": b"not read"}, ["1_2"])
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "link").symlink_to(drop / "data")
    monkeypatch.chdir(drop / "data" / "seg" if given.startswith(".") else tmp_path / "elsewhere")
    with pytest.raises(NotInDropError) as err:
        require_drop(Path(given))
    assert f"(did you mean {drop}?)" in str(err.value)


@pytest.mark.parametrize(
    "command",
    [
        ["complexity", "verify"],
        ["logs", "reconcile", "{tmp}"],
        ["release", "publish", "--build", "{tmp}", "--releases", "{tmp}/releases"],
    ],
    ids=["complexity-verify", "logs-reconcile", "release-publish"],
)
def test_every_reader_of_a_raw_option_names_the_drop_it_likely_meant(
    tmp_path: Path, command: list[str]
) -> None:
    """``nasmr ingest`` and ``build`` named the drop beside a mistyped ``--raw``; these said
    only that a file was not in the drop, or (publish) called the build stale."""
    write_drop(tmp_path / "drop", {"seg": b"not read"}, ["1_2"])
    args = [arg.format(tmp=tmp_path) for arg in command]
    result = CliRunner().invoke(main, [*args, "--raw", str(tmp_path / "drop" / "data")])
    assert result.exit_code == 1, result.output
    assert f"raw drop not found at {tmp_path / 'drop' / 'data'} " in result.output
    assert f"(did you mean {tmp_path / 'drop'}?)" in result.output
    assert not (tmp_path / "releases").exists()
