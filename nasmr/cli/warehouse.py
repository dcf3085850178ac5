"""``nasmr ingest`` (validate the drop, build the warehouse) and ``nasmr sql`` (query it)."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from nasmr import paths
from nasmr.cli.options import (
    complexity_option,
    existing_drop,
    from_release,
    raw_option,
    release_option,
    warehouse_option,
    workers_option,
)
from nasmr.complexity import ComplexityMethod

if TYPE_CHECKING:
    import pandas as pd

TABLE_DECIMALS = 9
"""Decimals of floats in ``nasmr sql`` tables: GMac values carry 9 (exact MACs / 1e9)."""


@click.command()
@raw_option
@warehouse_option("The DuckDB file to (re)build; Parquet tables go to parquet/ beside it.")
@complexity_option("--complexity", default="analytic")
@workers_option("Processes for --complexity module.")
def ingest(
    raw_dir: Path, warehouse: Path, complexity_method: ComplexityMethod, workers: int | None
) -> None:
    """Validate the raw drop and (re)build the warehouse; exit 1 if a present file fails to load
    or the warehouse breaks a data-quality rule (``nasmr.quality``)."""
    from nasmr.build_lock import BuildFolderBusy, build_lock
    from nasmr.ingest import unknown_settings
    from nasmr.paths import ReleaseFolderError
    from nasmr.quality import RULES, broken_rules
    from nasmr.rawdrop import RawDropError
    from nasmr.warehouse import WarehouseError, connect
    from nasmr.warehouse import ingest as run_ingest
    from schemas.settings import SETTINGS

    def progress(done: int, total: int) -> None:
        if done % 250 == 0 or done == total:
            click.echo(f"complexity ({complexity_method}): {done}/{total}", err=True)

    elsewhere = "--warehouse or NASMR_WAREHOUSE"
    existing_drop(raw_dir)  # before the output folder is made
    try:
        with build_lock(warehouse.parent, "nasmr ingest", elsewhere):
            result = run_ingest(
                raw_dir,
                warehouse.parent,
                complexity_method,
                db_name=warehouse.name,
                workers=workers,
                progress=progress,
            )
            with connect(result.warehouse) as con:  # under the lock: the checked file is ours
                broken = broken_rules(con)
    except (RawDropError, ReleaseFolderError, WarehouseError, BuildFolderBusy) as err:
        raise click.ClickException(str(err)) from err
    report = result.report.fillna({"setting": "(search list)", "reason": ""})
    click.echo(report[["setting", "status", "read", "valid", "quarantined"]].to_string(index=False))
    for row in report[report["reason"] != ""].itertuples(index=False):
        click.echo(f"{row.setting}: {row.status}: {row.reason}")
    for name in unknown_settings(raw_dir):
        click.echo(f"ignored: data/{name}/ is no setting of the benchmark ({', '.join(SETTINGS)})")
    complexity = result.tables["complexity"]
    compared = complexity["match"].notna()
    click.echo(
        f"complexity ({complexity_method}): {int(complexity['match'].sum())} of "
        f"{int(compared.sum())} published FLOPs/params reproduced exactly"
    )
    click.echo(f"search-list codes without results: {len(result.unevaluated)}")
    for code in result.unevaluated:
        click.echo(f"  {code}")
    click.echo(f"warehouse: {result.warehouse}")
    fixes = {rule.name: rule.fix for rule in RULES}
    for name, rows in broken.items():
        shown = rows.head(10).to_string(index=False)
        click.echo(f"data-quality rule {name} broken by {len(rows)} row(s):\n{shown}")
        if fixes[name]:
            click.echo(f"fix: {fixes[name]}")
    if result.failed or broken:
        problems = [f"could not load: {', '.join(result.failed)}"] if result.failed else []
        problems += [f"rules broken: {', '.join(broken)} (publishing refuses it)"] if broken else []
        raise click.ClickException("; ".join(problems))


def _plain(value: Any) -> Any:
    """``value`` as JSON holds it: NULL, NaN and infinities as null, at any depth of a list
    or struct; dates and times in ISO 8601, whole decimals as integers, bytes as hex, and
    what JSON has no word for (UUID, INTERVAL) as its text. A NumPy array (a list cell of
    a DataFrame) is a list, at any depth."""
    value = _listed(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        whole = value.is_finite() and value.as_tuple().exponent >= 0  # type: ignore[operator]
        return int(value) if whole else float(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value if value is None or isinstance(value, str | int) else str(value)


EXACT_IN_FLOAT = 2**53
"""Whole numbers below this size survive a float64 unchanged (2**53 + 1 arrives as 2**53)."""


def _whole_numbers(frame: pd.DataFrame, types: list[str]) -> pd.DataFrame:
    """``frame`` with the columns DuckDB types as whole numbers but hands pandas as floats
    (HUGEINT, which ``sum`` of a BIGINT returns, and DECIMAL(p,0)) as integers again, when
    every value is one a float holds exactly: ``sum(published_macs)`` printed
    8596182408790.0. Larger values were rounded on the way; JSON gives them exactly."""
    import pandas as pd

    shown = frame.copy()
    for (column, values), kind in zip(frame.items(), types, strict=True):
        whole_type = kind == "HUGEINT" or (kind.startswith("DECIMAL(") and kind.endswith(",0)"))
        if not whole_type or not pd.api.types.is_float_dtype(values):
            continue
        known = values.dropna()
        if ((known % 1 == 0) & (known.abs() < EXACT_IN_FLOAT)).all():
            shown[column] = values.astype("Int64")
    return shown


def _distinct_keys(columns: list[str]) -> None:
    """Refuse a result whose column names repeat: JSON keys would overwrite each other.

    The table and CSV formats show DuckDB's renamed copies (``top1_1``); a JSON consumer
    would read keys made up by DuckDB, so it is asked to name the columns itself.
    """
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise click.ClickException(
            f"column name(s) {', '.join(map(repr, repeated))} repeat in the result, and the "
            "keys of a JSON record must differ: name the columns apart "
            "(e.g. SELECT a.top1 AS cls_top1, b.top1 AS video_top1 ...)"
        )


def _nested_as_json(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its list, struct and map cells as JSON text, every item kept (pandas
    wrote NumPy's text, ``[1 2 --]``, cut with ``...`` past 1,000 items), BLOBs as hex; for
    CSV."""
    shown = frame.copy()
    for column, values in shown.items():
        if values.dtype == object:
            shown[column] = values.map(_json_cell)
    return shown


def _json_cell(value: Any) -> Any:
    """A list, struct or map cell as JSON text (NULLs as null), a BLOB as hex as JSON has it
    (pandas wrote ``bytearray(b'...')``); other values as they are."""
    if isinstance(_listed(value), list | dict):
        return json.dumps(_plain(value), allow_nan=False)
    return _plain(value) if isinstance(value, bytes | bytearray) else value


def _listed(value: Any) -> Any:
    """A list cell (a NumPy array, whose masked items become None) as a Python list."""
    return value.tolist() if getattr(value, "ndim", 0) else value


def _nulls_as_null(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the missing values of its object and ``pd.NA`` columns (Int*, boolean,
    Python strings) as NaN, which ``na_rep`` spells: pandas prints ``None`` and ``<NA>``
    whatever ``na_rep`` says, so a NULL came out as ``NaN``, ``None``, ``<NA>`` or ``NaT``
    by column type. Other columns keep their dtype, and so their formatting; list and struct
    cells become text with their inner NULLs spelt out (:func:`_nested_text`)."""
    import pandas as pd

    shown = frame.copy()
    for column, values in shown.items():
        if values.dtype == object:
            shown[column] = values = values.map(_nested_text)
        nullable = values.dtype == object or getattr(values.dtype, "na_value", None) is pd.NA
        if nullable and values.isna().any():
            shown[column] = values.astype(object).where(values.notna(), math.nan)
    return shown


def _nested_text(value: Any) -> Any:
    """A list, struct or map cell as pandas prints one, with NULL for the NULLs inside it
    (pandas printed ``--`` in a list and ``None`` in a struct); other values as they are."""
    value = _listed(value)
    if isinstance(value, list):
        return "[" + ", ".join(_item_text(item, quoted=False) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{key!r}: {_item_text(item, quoted=True)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    return value


def _item_text(item: Any, quoted: bool) -> str:
    """An item of a list (strings bare) or struct (strings quoted), as pandas prints them."""
    if item is None:
        return "NULL"
    if isinstance(item, str):
        return repr(item) if quoted else item
    return str(_nested_text(item))


@click.command()
@click.argument("query", required=False)
@click.option(
    "-f",
    "--file",
    "query_file",
    type=click.File("r"),
    help="Read the query from a file ('-' for standard input), e.g. warehouse/sql/kendall.sql.",
)
@warehouse_option("The DuckDB file to query.")
@release_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
def sql(
    query: str | None,
    query_file: TextIO | None,
    warehouse: Path,
    release: str | None,
    fmt: str,
) -> None:
    """Run one SQL query against the warehouse and print the result.

    The warehouse is opened read-only; a statement that writes other files (COPY ... TO,
    ATTACH) writes them where it says. A NULL prints as NULL in the table (null in JSON, empty
    in CSV); a DOUBLE's NaN does too, as in JSON, since the table is made through pandas,
    which cannot tell the two apart. In CSV a list, struct or map cell is JSON text, a BLOB
    hex. Whole numbers beyond 2^53 are exact only in JSON. JSON needs distinct column names
    (the table and CSV show DuckDB's renamed copies, top1_1).
    """
    import duckdb
    import pandas as pd

    if (query is None) == (query_file is None):
        raise click.UsageError("give the query either as an argument or with --file")
    query = query if query is not None else query_file.read()
    if release is not None:
        warehouse = from_release(release, {"warehouse": "--warehouse"}) / paths.WAREHOUSE_NAME

    from nasmr.warehouse import connect, query_result

    try:
        with connect(warehouse) as con:
            result = query_result(con, query)
            if fmt == "json":  # DuckDB's Python values: exact dates and integers, any size
                columns = [column for column, *_ in result.description]
                _distinct_keys(columns)
                records = [
                    _plain(dict(zip(columns, row, strict=True))) for row in result.fetchall()
                ]
            else:
                types = [str(column_type) for _, column_type, *_ in result.description]
                frame = _whole_numbers(result.df(), types)
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    except duckdb.Error as err:
        raise click.ClickException(f"SQL error: {err}") from err
    if fmt == "json":  # Python writes floats exactly; pandas' to_json keeps 10 digits
        click.echo(json.dumps(records, indent=2, allow_nan=False))
    elif fmt == "csv":
        click.echo(_nested_as_json(frame).to_csv(index=False), nl=False)
    elif frame.empty:  # pandas would print "Empty DataFrame" and the column list
        click.echo("  ".join(map(str, frame.columns)) + "\n(0 rows)")
    else:  # pandas trims the trailing zeros every value of a column has
        with pd.option_context("display.precision", TABLE_DECIMALS):
            click.echo(_nulls_as_null(frame).to_string(index=False, na_rep="NULL"))
