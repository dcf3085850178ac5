"""The query API of a release: ``Benchmark.open("latest")``, then ask about architectures.

In the spirit of the NAS-Bench-201 and TransNAS-Bench-101 APIs, over a
release's read-only DuckDB file. Opening preloads every metric value, FLOPs and
params into NumPy arrays (2507 architectures x a few metrics per setting), so a
:meth:`Benchmark.query` is a few dictionary and array look-ups; SQL is there for
everything else.

The benchmark's architectures are the evaluated ones (those with results in at
least one setting), in search-list order: ``len(bench)`` counts them, ``bench.index(code)``
is a position in that order, ``bench.arch(i)`` the inverse, and iterating yields
:class:`~nasmr.space.Arch` values. Wherever a code is taken, an ``Arch`` works too.

Two numbers must not be confused. An *index* (``bench.arch(i)``, ``bench.index(code)``,
the ``index`` column of :meth:`Benchmark.best` and :meth:`Benchmark.pareto`) is a 0-based
position among the evaluated architectures only. A *search_index* (the column of the
``architectures`` table, also returned by ``best`` and ``pareto``) is the 0-based line of
the code in ``search_list.txt``, which also counts the unevaluated codes. They differ
after the first unevaluated code: in the NAS-Bench-MR drop (4 unevaluated, the first on
line 1561) for 946 architectures, every search_index from 1562 on.

NAS-Bench-201 cells live in another space; query them with
``bench.sql("SELECT * FROM nb201_results")``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nasmr import paths
from nasmr.pareto import pareto_front
from nasmr.rawdrop import search_list_path, trainval_path
from nasmr.release import load_manifest, names_a_release, require_verified, resolve_release
from nasmr.shown import did_you_mean
from nasmr.space import Arch, ArchError
from nasmr.warehouse import WAREHOUSE_NAME, connect, query_frame
from schemas.release import ReleaseManifest
from schemas.settings import MR_SETTINGS, NB201, SETTINGS

COMPLEXITY_COLUMNS = ("flops", "params")
"""Keys of :meth:`Benchmark.query` besides the metrics: published GMac and M params."""


class BenchmarkKeyError(KeyError):
    """Something asked for is not in the benchmark; the message lists what is."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownArchitectureError(BenchmarkKeyError):
    """A code (or Arch) that is malformed or has no results in this benchmark."""


class UnknownSettingError(BenchmarkKeyError):
    """A setting without results in this benchmark."""


class UnknownMetricError(BenchmarkKeyError):
    """A metric the setting does not report."""


@dataclass(frozen=True, slots=True)
class _SettingTable:
    """One setting's metric values: ``values[i, j]`` is metric ``j`` of architecture ``i``;
    ``evaluated[i]`` whether architecture ``i`` has results in the setting."""

    metrics: tuple[str, ...]
    values: np.ndarray
    evaluated: np.ndarray


class Benchmark:
    """A read-only view of one release (or warehouse build dir); open with :meth:`open`."""

    def __init__(self, root: Path, manifest: ReleaseManifest | None) -> None:
        self.root = root
        self.manifest = manifest
        self._con = connect(root / WAREHOUSE_NAME)
        try:
            codes = self._con.execute(
                "SELECT code, search_index, evaluated FROM architectures ORDER BY search_index"
            ).fetchall()
            self._codes: tuple[str, ...] = tuple(code for code, _, evaluated in codes if evaluated)
            self._search_index = np.array(
                [line for _, line, evaluated in codes if evaluated], dtype=np.int64
            )
            self._unevaluated = frozenset(code for code, _, evaluated in codes if not evaluated)
            self._index = {code: i for i, code in enumerate(self._codes)}
            self._complexity = self._load_complexity()
            self._tables = self._load_results()
        except BaseException:
            self._con.close()
            raise

    @classmethod
    def open(
        cls, ref: str | Path = "latest", releases_dir: Path | None = None, *, verify: bool = False
    ) -> Benchmark:
        """Open ``'latest'``, a version, a release folder, or a build dir holding a warehouse.

        ``verify`` checks a release against its checksums before reading any of it (a
        build folder has none), as exporting it does: a damaged file is then named as such.
        """
        path = Path(ref)
        if (
            (path / WAREHOUSE_NAME).is_file()
            and not paths.holds_release(path)
            and not names_a_release(ref)
        ):
            return cls(path, None)
        root = resolve_release(ref, releases_dir)
        if verify:
            require_verified(root)
        return cls(root, load_manifest(root))

    def close(self) -> None:
        """Close the DuckDB connection."""
        self._con.close()

    def __enter__(self) -> Benchmark:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[type[Benchmark], tuple[Path, ReleaseManifest | None]]:
        """Pickled as its folder and manifest and opened again on unpickling, so worker
        processes (``multiprocessing``, ``concurrent.futures``) each get a connection."""
        return (type(self), (self.root, self.manifest))

    def __repr__(self) -> str:
        version = self.manifest.version if self.manifest else "build"
        return f"Benchmark({version}: {len(self)} architectures, {len(self.settings)} settings)"

    # -- loading ---------------------------------------------------------------------------

    _POSITIONS = (
        "(SELECT code, row_number() OVER (ORDER BY search_index) - 1 AS pos "
        "FROM architectures WHERE evaluated)"
    )
    """Each evaluated code's position: joining on it keeps strings out of the fetched rows."""

    def _load_complexity(self) -> np.ndarray:
        """Published GMac and M params per architecture, shape (n, 2); NaN where unpublished."""
        out = np.full((len(self._codes), 2), np.nan)
        found = self._con.execute(
            "SELECT pos, published_macs / 1e9 AS flops, published_params / 1e6 AS params "
            f"FROM complexity JOIN {self._POSITIONS} USING (code)"
        ).fetchnumpy()
        out[found["pos"], 0] = np.ma.filled(found["flops"].astype(float), np.nan)
        out[found["pos"], 1] = np.ma.filled(found["params"].astype(float), np.nan)
        return out

    def _load_results(self) -> dict[str, _SettingTable]:
        """Every MR setting's values as an (architectures x metrics) array, NaN where absent."""
        rows = self._con.execute(
            "SELECT setting, metric, list(pos), list(value) "
            f"FROM results JOIN {self._POSITIONS} USING (code) GROUP BY setting, metric"
        ).fetchall()
        by_setting: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
        for setting, metric, positions, values in rows:
            by_setting.setdefault(setting, {})[metric] = (positions, values)
        order = {name: i for i, name in enumerate(SETTINGS)}
        tables = {}
        for setting in sorted(by_setting, key=lambda name: (order.get(name, len(order)), name)):
            found = by_setting[setting]
            declared = SETTINGS[setting].metrics if setting in SETTINGS else ()
            metrics = tuple(m for m in declared if m in found)
            metrics += tuple(sorted(set(found) - set(metrics)))
            values = np.full((len(self._codes), len(metrics)), np.nan)
            for j, metric in enumerate(metrics):
                positions, column = found[metric]
                values[positions, j] = np.array(column, dtype=float)
            tables[setting] = _SettingTable(metrics, values, ~np.isnan(values).all(axis=1))
        return tables

    # -- architectures ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._codes)

    def __iter__(self) -> Iterator[Arch]:
        """The evaluated architectures, in search-list order (the i-th is ``arch(i)``)."""
        return (Arch.from_code(code) for code in self._codes)

    def __contains__(self, code: object) -> bool:
        try:
            self.index(code)  # type: ignore[arg-type]
        except UnknownArchitectureError:
            return False
        return True

    @property
    def codes(self) -> tuple[str, ...]:
        """Codes of the evaluated architectures, in search-list order: ``codes[index]``."""
        return self._codes

    def arch(self, index: int) -> Arch:
        """The architecture at position ``index`` among the evaluated ones (0-based).

        Not the search_index (line of ``search_list.txt``): unevaluated codes have no
        position, so the two differ after the first of them; see the module docstring.
        """
        if isinstance(index, bool) or not isinstance(index, Integral):
            raise TypeError(
                f"architecture index must be an int (a position among the evaluated "
                f"architectures), got {index!r}; for a code use query(code, ...) or index(code)"
            )
        if not -len(self._codes) <= index < len(self._codes):
            raise IndexError(f"architecture index {index} out of range [0, {len(self._codes)})")
        return Arch.from_code(self._codes[index])

    def index(self, code: str | Arch) -> int:
        """Position of an architecture among the evaluated ones (0-based), not its search_index."""
        key = code.code if isinstance(code, Arch) else code
        found = self._index.get(key) if isinstance(key, str) else None
        if found is None:
            raise self._unknown(code)
        return found

    def _unknown(self, code: object) -> UnknownArchitectureError:
        """Why ``code`` is not an evaluated architecture: not a code, unevaluated, or outside."""
        size = f"the benchmark has {len(self._codes)} evaluated architectures"
        if isinstance(code, Arch):
            canonical = code.code
        else:
            try:
                canonical = Arch.from_code(code).code  # type: ignore[arg-type]
            except ArchError as err:
                hint = ""
                if isinstance(code, Integral) and not isinstance(code, bool):
                    hint = f"; for the architecture at position {code} use arch({code})"
                elif isinstance(code, (list, tuple, np.ndarray)):
                    hint = "; for an embedding use Arch.from_embedding(...)"
                return UnknownArchitectureError(
                    f"{code!r} is not a valid architecture code ({err}); {size}{hint}"
                )
        if canonical in self._unevaluated:
            return UnknownArchitectureError(
                f"architecture {canonical} is in the search list but has no results in any "
                f"setting; {size}"
            )
        return UnknownArchitectureError(
            f"architecture {canonical} is in the space but not in the benchmark; {size} "
            "(see Benchmark.codes)"
        )

    # -- settings and metrics --------------------------------------------------------------

    @property
    def settings(self) -> tuple[str, ...]:
        """The settings with results, in the registry's order."""
        return tuple(self._tables)

    def metrics(self, setting: str) -> tuple[str, ...]:
        """The metrics a setting reports."""
        return self._setting(setting).metrics

    def _row(self, code: str | Arch, setting: str) -> tuple[_SettingTable, int]:
        """The setting's table and the architecture's row, which must have results there."""
        table = self._setting(setting)  # first: a nas-bench-201 cell is not a code
        i = self.index(code)
        if not table.evaluated[i]:
            elsewhere = [s for s, t in self._tables.items() if t.evaluated[i]]
            raise UnknownArchitectureError(
                f"architecture {self._codes[i]} has no results in setting {setting!r}; "
                f"it has results in: {', '.join(elsewhere)}"
            )
        return table, i

    def _setting(self, setting: str) -> _SettingTable:
        table = self._tables.get(setting)
        if table is not None:
            return table
        known = ", ".join(self._tables)
        if setting == "nas-bench-201":
            raise UnknownSettingError(
                "nas-bench-201 is another search space (cells, not NAS-Bench-MR codes): "
                "query it with sql('SELECT * FROM nb201_results')"
            )
        if setting in SETTINGS:
            raise UnknownSettingError(
                f"setting {setting!r} has no results in this release; settings: {known}"
            )
        hint = did_you_mean(setting, self._tables)
        raise UnknownSettingError(f"unknown setting {setting!r}; settings: {known}{hint}")

    def _metric_column(self, setting: str, metric: str) -> int:
        metrics = self._setting(setting).metrics
        if metric not in metrics:
            raise UnknownMetricError(
                f"setting {setting!r} has no metric {metric!r}; its metrics: {', '.join(metrics)}"
                + did_you_mean(metric, metrics)
            )
        return metrics.index(metric)

    # -- queries ---------------------------------------------------------------------------

    def query(self, code: str | Arch, setting: str) -> dict[str, Any]:
        """All metrics of an architecture in a setting, plus ``flops`` (GMac) and ``params`` (M)."""
        table, i = self._row(code, setting)
        out: dict[str, Any] = dict(zip(table.metrics, table.values[i].tolist(), strict=True))
        out.update(zip(COMPLEXITY_COLUMNS, self._complexity[i].tolist(), strict=True))
        return out

    def metric(self, code: str | Arch, setting: str, name: str) -> float:
        """One metric value (``flops`` and ``params`` work too)."""
        table, i = self._row(code, setting)
        if name in COMPLEXITY_COLUMNS and name not in table.metrics:
            return float(self._complexity[i, COMPLEXITY_COLUMNS.index(name)])
        return float(table.values[i, self._metric_column(setting, name)])

    def to_pandas(self, setting: str) -> pd.DataFrame:
        """One row per architecture with results: code, every metric, flops (GMac), params (M)."""
        table = self._setting(setting)
        frame = pd.DataFrame(table.values, columns=list(table.metrics))
        frame.insert(0, "code", list(self._codes))
        frame["flops"], frame["params"] = self._complexity[:, 0], self._complexity[:, 1]
        return frame[frame[list(table.metrics)].notna().any(axis=1)].reset_index(drop=True)

    def best(
        self,
        setting: str,
        metric: str | None = None,
        *,
        max_gflops: float | None = None,
        max_mparams: float | None = None,
        k: int = 10,
    ) -> pd.DataFrame:
        """The ``k`` architectures with the highest ``metric`` (the setting's primary one by
        default), optionally within budgets of FLOPs (GMac) and params (M).

        Ties go to fewer FLOPs, then search-list order. Columns: index (position among the
        evaluated architectures, for :meth:`arch`), search_index (0-based line of
        ``search_list.txt``, as in the ``architectures`` table), code, the metric, flops, params.
        The budgets and ``k`` are keywords: ``best("seg", "mIoU", 5)`` read as a budget
        of 5 GMac would drop the best architectures without a word.
        """
        if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
            raise ValueError(f"k must be a whole number of at least 1, got {k!r}")  # head(-1)...
        if metric is None:
            self._setting(setting)  # a known setting of this release first
            metric = SETTINGS[setting].primary_metric
        frame = self._frame(setting, metric)
        budgets = (("max_gflops", max_gflops, "flops"), ("max_mparams", max_mparams, "params"))
        for name, budget, column in budgets:
            if budget is None:
                continue
            if not isinstance(budget, Real) or isinstance(budget, bool) or math.isnan(budget):
                raise ValueError(f"{name} must be a number or None, got {budget!r}")
            frame = frame[frame[column] <= budget]
        frame = frame.sort_values([metric, "flops", "index"], ascending=[False, True, True])
        return frame.head(k).reset_index(drop=True)

    def pareto(self, setting: str, metric: str) -> pd.DataFrame:
        """The architectures no other beats on both ``metric`` (higher) and FLOPs (lower).

        Sorted by FLOPs; columns as in :meth:`best`.
        """
        frame = self._frame(setting, metric)
        front = pareto_front(frame["flops"].to_numpy(), frame[metric].to_numpy())
        return frame.iloc[front].reset_index(drop=True)

    def _frame(self, setting: str, metric: str) -> pd.DataFrame:
        """index, search_index, code, metric, flops, params of those that have the metric."""
        values = self._setting(setting).values[:, self._metric_column(setting, metric)]
        frame = pd.DataFrame(
            {
                "index": np.arange(len(self._codes)),
                "search_index": self._search_index,
                "code": list(self._codes),
                metric: values,
                "flops": self._complexity[:, 0],
                "params": self._complexity[:, 1],
            }
        )
        return frame[frame[metric].notna()]

    def sql(
        self, query: str, parameters: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> pd.DataFrame:
        """Run an SQL query on the release's DuckDB file, opened read-only; ``parameters``
        fill ``?`` (a list) or ``$name`` (a dict). A ``COPY ... TO`` writes where it says."""
        return query_frame(self._con, query, () if parameters is None else parameters)

    # -- export ----------------------------------------------------------------------------

    def export_trainval(self, out_dir: Path) -> list[Path]:
        """Write the results back in the raw drop's layout and record format; return the files.

        ``out_dir/data/search_list.txt`` (every search-list code, in order, one per line;
        the last line ends with a newline unless the drop's did not, as its recorded size
        tells) and ``out_dir/data/<setting>/trainval.pkl`` per setting with results (the MR
        ones and nas-bench-201), records in the published order, so ``out_dir`` can be
        ingested like the original drop: a release of the real drop gives its 10 files back
        byte for byte. A published release is refused as ``out_dir``.
        """
        from nasmr.export import records_frame, write_nb201_trainval, write_trainval

        out_dir = paths.outside_releases(Path(out_dir), "export elsewhere (--out)")
        search_list = search_list_path(out_dir)
        search_list.parent.mkdir(parents=True, exist_ok=True)
        codes = self._con.execute("SELECT code FROM architectures ORDER BY search_index").fetchall()
        text = "\n".join(code for (code,) in codes)
        read = self._con.execute(  # the drop's file: did its last line end with a newline?
            "SELECT bytes FROM sources WHERE path = ?", [search_list_path(Path()).as_posix()]
        ).fetchone()
        search_list.write_text(text if read == (len(text.encode()),) else text + "\n")
        written = [search_list]
        results = self._con.execute("SELECT * FROM results").df()
        for setting in self.settings:
            if setting in MR_SETTINGS:
                path = trainval_path(out_dir, setting)
                path.parent.mkdir(parents=True, exist_ok=True)
                write_trainval(records_frame(results, setting), setting, path)
                written.append(path)
        cells = self._con.execute("SELECT * FROM nb201_results ORDER BY record_index").df()
        if len(cells):
            written.append(write_nb201_trainval(cells, trainval_path(out_dir, NB201)))
        return written
