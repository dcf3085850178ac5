"""Reading the raw drop safely: file layout and a restricted unpickler.

A ``trainval.pkl`` is untrusted input, and a pickle is a program. The loader
allows only NumPy's array and scalar reconstruction (the real drop's nas-bench-201
embeddings are arrays) and refuses every other global before anything runs. Even
those run none of NumPy's own unpickling code: stand-ins accept plain numeric dtypes
only and build each value from bytes the file holds, so a forged dtype cannot corrupt
memory and a claimed shape cannot allocate more than the file's size.

It is Python's own (pure-Python) unpickler, about 0.1 s slower per file than the C one,
because it lets the loader check opcodes before they run:

* opcodes no drop needs are refused (:data:`REFUSED_OPCODES`: object construction
  without ``__init__``, out-of-band buffers, sets), globals come from :data:`STAND_INS`
  only, and BUILD sets state only on the array and dtype stand-ins, whose
  ``__setstate__`` checks it (no attribute setting);
* a dict key must be a short string before it is hashed: hashing a tuple nested a few
  hundred thousand deep overflows the C stack and kills the process, one built of shared
  tuples (``t = (t, t)`` over and over) hashes for ever, and ints that share a hash, or
  one huge int used again and again, make every insert slow;
* ints fit 64 bits, a file holds at most :data:`MAX_RECORDS` records, and an array
  shares the file's bytes (each array of one reused buffer used to copy it): what a
  small file makes the loader and validation do stays in proportion to its size;
* bytes after the pickle's end (a second ``pickle.dump`` appended to the file) fail the
  file rather than go unread.

The real drop is well within every limit (string keys of up to 25 characters, ints up
to 128, 15,625 records at most).
"""

from __future__ import annotations

import io
import math
import pickle
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from nasmr.checksums import sha256_bytes
from nasmr.shown import cut, shown

SEARCH_LIST = "search_list.txt"
TRAINVAL = "trainval.pkl"
MISSING = "missing"
"""The version (:func:`file_version`) of a file not in the drop."""
UNREADABLE = "unreadable"
"""The version of a path that is no readable file (no permission, a directory, ...)."""
MAX_FILE_BYTES = 256 * 1024 * 1024
"""Largest raw-drop file read (the drop's largest, nas-bench-201's results, is a few MB)."""
MAX_KEY_CHARS = 100
"""Longest dict key, a string (the drop's longest is ``inverted_residual_setting``)."""
MAX_INT_BITS = 64
"""Widest int a drop may hold."""
MAX_RECORDS = 100_000
"""Most records one file may hold (the drop's largest file holds 15,625)."""
MAX_DIMENSIONS = 64
"""Most dimensions of an array, NumPy's own limit."""

PLAIN_KINDS = "biuf"
"""NumPy dtype kinds an array in the drop may have: bool, signed and unsigned int, float."""


class RawDropError(Exception):
    """A raw-drop file could not be read; the message names the file and the reason."""


class NotInDropError(RawDropError):
    """Nothing is at a raw-drop file's path: for a setting, a status rather than a failure."""


class _NDArray:
    """Stand-in for ``numpy.ndarray``: only marks what ``_reconstruct`` is asked to build."""

    def __repr__(self) -> str:
        return "numpy.ndarray"  # quarantine reasons quote values: no address, the same each run


class _DType:
    """Stand-in for ``numpy.dtype``: a plain numeric type code and its byte order."""

    def __init__(self, code: object, align: object = False, copy: object = True) -> None:
        dtype = np.dtype(code) if isinstance(code, str) and len(code) <= 4 else None
        if dtype is None or dtype.kind not in PLAIN_KINDS or dtype.fields is not None:
            raise ValueError(f"array dtype {shown(code)} is not a plain numeric type")
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"dtype({self.dtype.str!r})"

    def __setstate__(self, state: object) -> None:
        # (version, byte order, subarray, names, fields, item size, alignment, flags)
        if not isinstance(state, tuple) or len(state) < 5 or state[2:5] != (None, None, None):
            raise ValueError("array dtype with fields or subarrays")
        if state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


class _Array:
    """Stand-in for an unpickled ``numpy.ndarray``, built by ``__setstate__`` from raw bytes."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        # (version, shape, dtype, Fortran order, data)
        if not isinstance(state, tuple) or len(state) != 5:
            raise ValueError("array state is not (version, shape, dtype, order, data)")
        _, shape, dtype, fortran, data = state
        if not (
            isinstance(shape, tuple)
            and len(shape) <= MAX_DIMENSIONS
            and all(type(n) is int and n >= 0 for n in shape)
        ):
            raise ValueError(
                f"array shape {shown(shape)} is not a tuple of at most {MAX_DIMENSIONS} sizes"
            )
        if not isinstance(dtype, _DType) or not isinstance(fortran, bool):
            raise ValueError("array state without a plain dtype and order flag")
        expected = math.prod(shape) * dtype.dtype.itemsize
        if not isinstance(data, bytes) or len(data) != expected:
            size = len(data) if isinstance(data, bytes) else type(data).__name__
            raise ValueError(
                f"array of shape {shown(shape)} {dtype.dtype} needs {expected} bytes, got {size}"
            )
        order = "F" if fortran else "C"  # a read-only view of the file's bytes, not a copy
        self.array = np.frombuffer(data, dtype.dtype).reshape(shape, order=order)

    def __repr__(self) -> str:  # quarantine reasons quote it: the same text on every run
        return "<array without its data>" if self.array is None else shown(self.array)


def _scalar(dtype: object, data: object) -> np.generic:
    """Stand-in for NumPy's ``scalar``: one value of a plain dtype from its bytes."""
    if not isinstance(dtype, _DType) or not isinstance(data, bytes):
        raise ValueError("scalar state without a plain dtype and its bytes")
    if len(data) != dtype.dtype.itemsize:
        raise ValueError(
            f"{dtype.dtype} scalar needs {dtype.dtype.itemsize} bytes, got {len(data)}"
        )
    return np.frombuffer(data, dtype.dtype)[0]


def _reconstruct(cls: object, shape: object, code: object) -> _Array:
    """Stand-in for NumPy's ``_reconstruct``: an empty array whose state comes next."""
    if cls is not _NDArray:
        raise ValueError("_reconstruct called on something other than numpy.ndarray")
    return _Array()


def _frombuffer(buffer: object, dtype: object, shape: object, order: object) -> _Array:
    """Stand-in for NumPy's ``_frombuffer`` (arrays in protocol 5): an array stand-in holding
    the bytes the file holds (no writable array is ever on the unpickler's stack)."""
    if not isinstance(buffer, bytes | bytearray) or not isinstance(dtype, _DType):
        raise ValueError("_frombuffer without the array's bytes and a plain dtype")
    array = _Array()
    array.__setstate__((1, shape, dtype, order == "F", bytes(buffer)))
    return array


class _Function:
    """A stand-in function, printed by its NumPy name (a default repr holds an address)."""

    def __init__(self, name: str, function: Any) -> None:
        self.name, self.function = name, function

    def __call__(self, *args: object) -> object:
        return self.function(*args)

    def __repr__(self) -> str:
        return self.name


STAND_INS: dict[tuple[str, str], object] = {
    **{
        (f"{prefix}.{module}", name): _Function(f"numpy.{module}.{name}", function)
        for prefix in ("numpy.core", "numpy._core")
        for module, name, function in (
            ("multiarray", "_reconstruct", _reconstruct),
            ("multiarray", "scalar", _scalar),
            ("numeric", "_frombuffer", _frombuffer),
        )
    },
    ("numpy", "ndarray"): _NDArray,
    ("numpy", "dtype"): _DType,
}
"""The only globals a raw-drop pickle may reference, and the stand-in each resolves to.

NumPy 2 pickles spell the modules ``numpy._core``, older ones ``numpy.core``; protocol 5
rebuilds arrays with ``_frombuffer``, earlier protocols with ``_reconstruct``.
"""


REFUSED_OPCODES = (
    *("INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"),
    *("NEXT_BUFFER", "READONLY_BUFFER"),
    *("EMPTY_SET", "ADDITEMS", "FROZENSET"),
)
"""Opcodes no drop needs: construction without ``__init__``, out-of-band buffers, sets."""


Check = Callable[[Any], None]
"""A check on the unpickler (its stack), run before or after one opcode."""


def _guarded_dispatch() -> dict[int, Check]:
    """The pure-Python unpickler's opcode table with the loader's checks around opcodes:
    :data:`REFUSED_OPCODES` refused, BUILD only on array and dtype stand-ins, dict keys
    checked before they are hashed, ints once made, a bytearray pushed as bytes."""

    def refuse(name: str) -> Check:
        def check(self: Any) -> None:
            raise RawDropError(f"{self._name}: refused opcode {name} (not needed by the drop)")

        return check

    before: dict[bytes, Check] = {getattr(pickle, name): refuse(name) for name in REFUSED_OPCODES}
    before |= {
        pickle.BUILD: lambda self: self._settable(self.stack[-2]),
        pickle.SETITEM: lambda self: self._keys(self.stack[-2:-1]),  # key, value on top
        pickle.SETITEMS: lambda self: self._keys(self.stack[0::2]),  # since the mark: k, v...
        pickle.DICT: lambda self: self._keys(self.stack[0::2]),
    }
    after: dict[bytes, Check] = {
        op: lambda self: self._int(self.stack[-1])
        for op in (pickle.INT, pickle.LONG, pickle.LONG1, pickle.LONG4)
    }
    after[pickle.BYTEARRAY8] = lambda self: self._as_bytes()
    table = dict(pickle._Unpickler.dispatch)
    for opcode in before.keys() | after.keys():
        run, first, then = table[opcode[0]], before.get(opcode), after.get(opcode)

        def guarded(self: Any, run: Check = run, first: Any = first, then: Any = then) -> None:
            if first is not None:
                first(self)
            run(self)
            if then is not None:
                then(self)

        table[opcode[0]] = guarded
    return table


class _RestrictedUnpickler(pickle._Unpickler):
    """Globals from :data:`STAND_INS` only, and the checks of the module docstring."""

    dispatch: ClassVar[dict[int, Check]] = _guarded_dispatch()

    def __init__(self, data: bytes, name: str) -> None:
        self._buffer = io.BytesIO(data)
        super().__init__(self._buffer)
        self._name = name

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in STAND_INS:
            named = cut(f"{module}.{name}", 200)
            raise RawDropError(f"{self._name}: refused global {named} (not needed by the drop)")
        return STAND_INS[module, name]

    def load(self) -> Any:
        """The pickle's object; bytes left after its end, in the file or in its last frame,
        fail the file."""
        loaded = super().load()
        left = self.unread()
        if left:
            raise RawDropError(
                f"{self._name}: {left} byte(s) after the end of the pickle (a second "
                "pickle written to the same file?); refused rather than left unread"
            )
        return loaded

    def unread(self) -> int:
        """How many of the file's bytes the unpickler has not read yet (in a frame or after)."""
        left = len(self._buffer.getbuffer()) - self._buffer.tell()
        frame = self._unframer.current_frame  # made by load()
        if frame is not None:
            left += len(frame.getbuffer()) - frame.tell()
        return left

    def _settable(self, target: object) -> None:
        """Refuse setting the state of anything but an array or dtype stand-in."""
        if type(target) not in (_Array, _DType):
            raise RawDropError(
                f"{self._name}: refused setting the state of {shown(target)} (only arrays "
                "and dtypes have one in a drop)"
            )

    def _as_bytes(self) -> None:
        """A bytearray becomes bytes: arrays then view it instead of copying it each."""
        self.stack[-1] = bytes(self.stack[-1])

    def _keys(self, keys: list[Any]) -> None:
        """Refuse a dict key that is not a short string (see the module docstring)."""
        for key in keys:
            if not isinstance(key, str) or len(key) > MAX_KEY_CHARS:
                raise RawDropError(
                    f"{self._name}: dict key {shown(key)}: a drop's keys are strings of at most "
                    f"{MAX_KEY_CHARS} characters"
                )

    def _int(self, value: Any) -> None:
        """Refuse an int wider than :data:`MAX_INT_BITS` (a bool is made by other opcodes)."""
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise RawDropError(
                f"{self._name}: an integer of {value.bit_length()} bits: a drop's integers "
                f"fit {MAX_INT_BITS}"
            )


def _arrays(records: list[Any]) -> list[Any]:
    """Records with each array stand-in among their fields replaced by its NumPy array (one
    that never got its data stays, to be quarantined with its record). A record listed
    again (a memo reference) is not scanned again."""
    seen: set[int] = set()
    for record in records:
        if not isinstance(record, dict) or id(record) in seen:
            continue
        seen.add(id(record))
        for key, value in record.items():
            if isinstance(value, _Array) and value.array is not None:
                record[key] = value.array
    return records


def read_raw(path: Path, name: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """A raw-drop file's bytes, read once (what is hashed is what is parsed); every way the
    path fails to be a readable file is a :class:`RawDropError` beginning with ``name``,
    and nothing at the path a :class:`NotInDropError`."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError) as err:
        if path.is_symlink():
            raise RawDropError(f"{name}: is a broken symbolic link") from err
        raise NotInDropError(f"{name}: file not found") from err
    except OSError as err:  # a folder on the way that cannot be searched, a link loop
        raise RawDropError(f"{name}: cannot be read ({err.strerror or err})") from err
    if stat.S_ISDIR(info.st_mode):
        raise RawDropError(f"{name}: is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):  # a named pipe would block the read for ever
        raise RawDropError(f"{name}: is not a regular file (a named pipe, socket or device)")
    if info.st_size > max_bytes:
        raise RawDropError(f"{name}: {info.st_size} bytes exceeds the {max_bytes}-byte limit")
    try:
        return path.read_bytes()
    except OSError as err:
        raise RawDropError(f"{name}: cannot be read ({err.strerror or err})") from err


def file_version(path: Path) -> str:
    """What tells one state of a raw file from another: its sha256, :data:`MISSING` or
    :data:`UNREADABLE` (the ingest reports why), so a drop is compared without failing."""
    try:
        return sha256_bytes(read_raw(path, str(path)))
    except NotInDropError:
        return MISSING
    except RawDropError:
        return UNREADABLE


def load_pickle(path: Path, max_bytes: int = MAX_FILE_BYTES, name: str | None = None) -> list[Any]:
    """Load a ``trainval.pkl`` as a list without executing code from it.

    Errors begin with ``name`` (default: the path), e.g. the file's place in its drop.
    """
    path = Path(path)
    name = str(path) if name is None else name
    return parse_pickle(read_raw(path, name, max_bytes), name)


def parse_pickle(data: bytes, name: str) -> list[Any]:
    """The records of a ``trainval.pkl``'s bytes, without executing code from them; errors
    begin with ``name``."""
    if not data:
        raise RawDropError(f"{name}: file is empty")
    unpickler = _RestrictedUnpickler(data, name)
    try:
        loaded = unpickler.load()
    except RawDropError:
        raise
    except Exception as err:  # any unpickling failure is a property of the file
        raise RawDropError(f"{name}: {_not_a_pickle(data, unpickler.unread(), err)}") from err
    if not isinstance(loaded, list):
        raise RawDropError(f"{name}: expected a list of records, found {type(loaded).__name__}")
    if len(loaded) > MAX_RECORDS:
        raise RawDropError(f"{name}: {len(loaded)} records, more than the {MAX_RECORDS} allowed")
    return _arrays(loaded)


FORMATS = {
    b"\x1f\x8b": "gzip-compressed",
    b"BZh": "bzip2-compressed",
    b"\xfd7zXZ\x00": "xz-compressed",
    b"\x28\xb5\x2f\xfd": "zstd-compressed",
    b"PK\x03\x04": "a zip archive, as torch.save writes",
    b"\x93NUMPY": "a NumPy .npy file",
}
"""The first bytes of files often mistaken for a pickle, and what they are."""


def _not_a_pickle(data: bytes, unread: int, err: Exception) -> str:
    """Why ``data`` failed to unpickle, in a maintainer's words: cut short (every byte was
    read), not a pickle at all (what it starts with), or the unpickler's own error."""
    if not unread:
        return "ends before the pickle's end (truncated?)"
    if data[0] != pickle.PROTO[0]:  # every pickle of protocol 2 or later starts so
        start = data[:8]
        kind = next((kind for magic, kind in FORMATS.items() if start.startswith(magic)), None)
        if kind is None and all(32 <= byte < 127 or byte in b"\t\r\n" for byte in start):
            kind = "text"
        hint = f"; {kind}?" if kind else ""
        return f"is not a pickle (starts with bytes {start.hex(' ')}{hint})"
    return f"not a readable pickle ({type(err).__name__}: {err})"


def require_drop(raw_dir: Path) -> Path:
    """``raw_dir`` itself if it holds a drop's search list; else an error saying how to point
    at one (checked before a writer makes or locks its output folder)."""
    try:  # looked up, not read: a path that is there but unreadable, its reader names
        search_list_path(raw_dir).lstat()
    except (FileNotFoundError, NotADirectoryError):
        near = _drop_near(Path(raw_dir))
        nearby = f" (did you mean {near}?)" if near else ""
        raise NotInDropError(
            f"raw drop not found at {raw_dir} (no data/search_list.txt){nearby}: set NASMR_RAW "
            "to the folder holding data/, or pass --raw DIR"
        ) from None
    except OSError:
        pass
    return raw_dir


def _drop_near(path: Path) -> Path | None:
    """The drop a mistyped ``--raw`` likely meant: one holding ``path`` (its ``data/`` folder,
    a setting's folder or a file of it), else the only drop in a folder just inside it.
    Looked for from the folder ``path`` names (links followed, ``..`` undone): the parents
    of a relative spelling such as ``.`` stop at the working folder."""
    try:
        path = path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a link loop (Python 3.11)
        path = path.absolute()
    holding = [up for up in path.parents[:3] if _holds_drop(up)]
    try:
        inside = [child for child in path.iterdir() if _holds_drop(child)]
    except OSError:
        inside = []
    near = holding[:1] or inside
    return near[0] if len(near) == 1 else None


def _holds_drop(folder: Path) -> bool:
    """Whether ``folder`` holds a drop's search list; not when it cannot be looked into
    (``Path.is_file`` raises PermissionError there rather than answering)."""
    try:
        return search_list_path(folder).is_file()
    except OSError:
        return False


def trainval_path(raw_dir: Path, setting: str) -> Path:
    """Where a setting's results live in a raw drop."""
    return Path(raw_dir) / "data" / setting / TRAINVAL


def search_list_path(raw_dir: Path) -> Path:
    """``<raw_dir>/data/search_list.txt``, the architecture codes of the drop."""
    return Path(raw_dir) / "data" / SEARCH_LIST


class SearchLine(NamedTuple):
    """A non-blank line of the search list: its 0-based line number, its stripped text and,
    for a line that is not UTF-8, why (its text then shows bad bytes as U+FFFD)."""

    index: int
    text: str
    problem: str | None = None


def read_search_list(raw_dir: Path) -> list[SearchLine]:
    """The non-blank lines of the drop's search list (:func:`parse_search_list`)."""
    path = search_list_path(raw_dir)
    return parse_search_list(read_raw(path, str(path)), str(path))


def parse_search_list(data: bytes, name: str) -> list[SearchLine]:
    """The non-blank lines of a search list's bytes in file order, numbered as in the file.

    Blank lines are skipped after numbering, so ``index`` stays the line an editor shows
    (minus one) and a rejected code can be found in the file. A line that is not UTF-8
    comes with a ``problem`` instead of stopping the read: one bad line loses no others.
    A list without codes fails, naming ``name``, as an empty ``trainval.pkl`` does: every
    result would be quarantined as outside it.
    """
    if not data:
        raise RawDropError(f"{name}: file is empty")
    lines = [_search_line(i, line) for i, line in enumerate(data.splitlines())]
    codes = [line for line in lines if line.text]
    if not codes:
        raise RawDropError(f"{name}: holds no codes, only blank lines")
    return codes


def _search_line(index: int, line: bytes) -> SearchLine:
    """One line of the search list decoded as UTF-8, or why it cannot be."""
    try:
        return SearchLine(index, line.decode("utf-8").strip())
    except UnicodeDecodeError as err:
        problem = f"not valid UTF-8: byte {err.start + 1} of the line"
        return SearchLine(index, line.decode("utf-8", errors="replace").strip(), problem)
