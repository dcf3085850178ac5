"""The documents a release carries for people and tools: changelog, datasheet, Frictionless
Data Package and Croissant metadata."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nasmr.checksums import sha256_file
from nasmr.release.diff import ReleaseDiff
from nasmr.release.store import (
    CHANGELOG,
    COMPLEXITY,
    CROISSANT,
    DATAPACKAGE,
    MANIFEST,
    PRIMARY_KEYS,
    SUMS,
    ReleaseError,
    archive_name,
    read_table,
    relative_files,
)
from nasmr.table_docs import COLUMN_DOCS, TABLE_DOCS
from nasmr.warehouse import (
    PARQUET_DIR,
    STORAGE_FORMAT,
    WAREHOUSE_NAME,
    warehouse_version,
)
from schemas.release import ReleaseManifest
from schemas.settings import SETTINGS, Task

ORIGINAL_REPOSITORY = "https://github.com/dingmyu/NCP"

BIBTEX = """@inproceedings{ding2022learning,
  author = {Ding, Mingyu and Huo, Yuqi and Lu, Haoyu and Yang, Linjie and Wang, Zhe and
            Lu, Zhiwu and Wang, Jingdong and Luo, Ping},
  title = {Learning Versatile Neural Architectures by Propagating Network Codes},
  booktitle = {International Conference on Learning Representations},
  year = {2022}
}"""
"""Citation of the original benchmark (from the authors' repository)."""

TITLE = "NAS-Bench-MR, curated (nasmr)"

TASK_WORDS = {
    Task.SEGMENTATION: "segmentation",
    Task.CLASSIFICATION: "classification",
    Task.VIDEO: "video",
    Task.DETECTION_3D: "3D-detection",
}
"""How the metadata's description names the task of each MR setting."""


def description(manifest: ReleaseManifest) -> str:
    """The release in one paragraph, for datapackage.json and croissant.json: how many
    networks it holds results of and the tasks of its MR settings (as the manifest says, so
    new architectures or a newly published setting are described as they are)."""
    evaluated = manifest.tables["architectures"].rows - len(manifest.unevaluated_codes)
    tasks = list(
        dict.fromkeys(
            TASK_WORDS[SETTINGS[s].task] for s in manifest.settings_present if SETTINGS[s].is_mr
        )
    )
    named = ", ".join(tasks[:-1]) + f" and {tasks[-1]}" if len(tasks) > 1 else "".join(tasks)
    return (
        f"Validated tables of NAS-Bench-MR (Ding et al., ICLR 2022): {evaluated} "
        f"multi-resolution networks evaluated on {named or 'no'} settings, with exact "
        "FLOPs/params. See README.md (datasheet) and manifest.json."
    )


LICENCE = "BSD-2-Clause"
"""SPDX identifier of the original repository's LICENSE file. Its README restricts it to
academic use, so the machine-readable metadata give the terms, not this identifier (a tool
would read it as a permissive licence)."""

LICENCE_TERMS = "BSD 2-Clause License for academic use; for commercial use, contact the author"
"""The licence as the original repository's README states it: BSD-2-Clause covers academic
use only."""

LICENCE_URL = f"{ORIGINAL_REPOSITORY}/blob/HEAD/LICENSE"
"""Where the original licence text is published (the default branch's)."""

LICENCE_NOTICE = """\
Copyright (c) 2021, Mingyu Ding
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE."""
"""The original repository's notice, which its clause 2 asks redistributions to reproduce
(the datasheet does)."""

WAREHOUSE_DOC = (
    "the tables as one DuckDB database (open it read-only), with their descriptions as "
    "comments, and the views results_<setting> (one setting's results, wide) and unevaluated"
)
"""What the release's DuckDB file is, for the Data Package."""

MODEL_OUTPUT_DOCS = {
    "predictors/report.*": "predictor report: test Kendall tau, Spearman, MAE and precision "
    "of the predicted top 10% per setting, metric and model, mean and std over split seeds",
    "predictors/*.json": "predictor card: its settings, inputs (nasmr.features), "
    "normalisation, network, training, split (the saved model is split seed 0's, trained "
    "on that seed's train architectures) and validation/test scores",
    "predictors/*.safetensors": "predictor weights, loaded with its card by "
    "nasmr.predictor.load_predictor (nasmr and torch)",
    "ncp/*_final.parquet": "NCP search result, one row per start: its best feasible "
    "architecture (code), the objective NCP maximised (weighted standardised predicted "
    "primary metrics minus cost_weight x log cost), predicted metrics, exact gflops (GMac) "
    "and mparams (M), and true.<setting>.<metric> with evaluated when the benchmark "
    "evaluated that architecture (NCP searches the whole space, so mostly null)",
    "ncp/*_trajectory.parquet": "NCP search trajectories: every rounded step of every start, "
    "with predicted metrics, exact cost and whether it met the budget (feasible)",
    "ncp/*.json": "NCP search card: data version, predictor, objective, budget, starts, steps "
    "and seed",
    "reports/search_budgets.csv": "search quality under FLOPs budgets: per setting, budget "
    "(a quantile of the test architectures' GMac), method and repeat, the architecture "
    "found with the same number of predictor queries, its true metric and regret against "
    "the best test architecture within the budget",
    "reports/search_pareto.csv": "search quality as a Pareto front: per setting, method and "
    "repeat, the hypervolume (log GMac against the true metric) of the architectures found, "
    "and its ratio to the test architectures' true front",
    "reports/search_report.md": "the search-quality tables as means over repeats, and which "
    "method leads",
    "reports/pareto_*.png": "plot of one setting's test architectures, true Pareto front and "
    "each method's picks",
}
"""What each kind of model-output file is (``fnmatch`` pattern -> description), for the Data
Package and the datasheet."""

MEDIA_TYPES = {
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv",
    "json": "application/json",
    "md": "text/markdown",
    "png": "image/png",
}
"""Media types of the release's file formats (others, like DuckDB's and safetensors', have
no registered one)."""

FOREIGN_KEYS: dict[str, list[dict[str, Any]]] = {
    name: [{"fields": ["code"], "reference": {"resource": "architectures", "fields": ["code"]}}]
    for name in ("results", "complexity")
}
"""References between tables (the Data Package declares them; every build holds them)."""


def changelog(manifest: ReleaseManifest, diff: ReleaseDiff, previous: Path | None) -> str:
    """This release's entry followed by the previous release's changelog entries."""
    since = (
        f"Changes since {manifest.previous_version} ({diff.level} release)."
        if manifest.previous_version
        else "First release: every record is new."
    )
    entry = f"## {manifest.version} ({manifest.created_at.date().isoformat()})\n\n{since}\n\n"
    entry += diff.to_markdown() + "\n"
    earlier = ""
    if previous is not None and (previous / CHANGELOG).is_file():
        earlier = (previous / CHANGELOG).read_text().partition("\n## ")[2]
        earlier = "\n## " + earlier if earlier else ""
    return f"# Changelog\n\n{entry}{earlier}"


_FRICTIONLESS_TYPES = (
    (pa.types.is_boolean, "boolean"),
    (pa.types.is_integer, "integer"),
    (pa.types.is_floating, "number"),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "string"),
    (pa.types.is_timestamp, "datetime"),
    (pa.types.is_date, "date"),
    (lambda t: pa.types.is_list(t) or pa.types.is_large_list(t), "array"),
)


def _field_type(arrow_type: pa.DataType) -> str:
    """The Table Schema type of an Arrow type ('any' when there is no closer one)."""
    return next((name for test, name in _FRICTIONLESS_TYPES if test(arrow_type)), "any")


def _timestamp(manifest: ReleaseManifest) -> str:
    """The release's creation time in ISO 8601 with ``Z`` (the metadata documents' spelling)."""
    return manifest.created_at.isoformat().replace("+00:00", "Z")


def model_output_doc(path: str) -> str:
    """The description of a model-output file (``MODEL_OUTPUT_DOCS``), '' if none fits."""
    return next((doc for glob, doc in MODEL_OUTPUT_DOCS.items() if fnmatch(path, glob)), "")


def _resource_name(path: str) -> str:
    """A Data Package resource name (lowercase, ``[-a-z0-9._/]``) for a release file."""
    return "".join(c if c.isalnum() or c in "-._/" else "-" for c in path.lower())


def datapackage(root: Path, manifest: ReleaseManifest) -> dict[str, Any]:
    """A Frictionless Data Package: one tabular resource per Parquet table, files for the rest.

    Resources say what they are both ways: ``profile`` for version 1 readers
    (datapackage-py, R's frictionless), ``type`` for version 2 ones. Tables carry no
    ``bytes``: frictionless reads them through pyarrow and reports any declared size as
    wrong. frictionless checks the ``hash`` of the other files only, so the integrity check
    of the tables is ``SHA256SUMS`` (``nasmr release verify``)."""
    resources: list[dict[str, Any]] = []
    for name in sorted(manifest.tables):
        rel = f"{PARQUET_DIR}/{name}.parquet"
        schema = pq.read_schema(root / rel)
        resources.append(
            {
                "name": name,
                "type": "table",
                "profile": "tabular-data-resource",
                "path": rel,
                "format": "parquet",
                "mediatype": MEDIA_TYPES["parquet"],
                "description": TABLE_DOCS.get(name, ""),
                "hash": f"sha256:{sha256_file(root / rel)}",
                "schema": {
                    "fields": [
                        {
                            "name": f.name,
                            "type": _field_type(f.type),
                            "description": COLUMN_DOCS.get(name, {}).get(f.name, ""),
                        }
                        for f in schema
                    ]
                }
                | ({"primaryKey": PRIMARY_KEYS[name]} if name in PRIMARY_KEYS else {})
                | ({"foreignKeys": FOREIGN_KEYS[name]} if name in FOREIGN_KEYS else {}),
            }
        )
    others = [WAREHOUSE_NAME] + [
        n for n in relative_files(root) if n.split("/")[0] in manifest.extras
    ]
    for rel in others:
        suffix = Path(rel).suffix.lstrip(".")
        described = {"mediatype": MEDIA_TYPES[suffix]} if suffix in MEDIA_TYPES else {}
        doc = WAREHOUSE_DOC if rel == WAREHOUSE_NAME else model_output_doc(rel)
        described |= {"description": doc} if doc else {}
        resources.append(  # "file": frictionless checks its bytes, and reads no JSON as a
            {  # descriptor of its own (an NCP result's "steps" as a pipeline's)
                "name": _resource_name(rel),
                "type": "file",
                "path": rel,
                **described,
                "bytes": (root / rel).stat().st_size,
                "hash": f"sha256:{sha256_file(root / rel)}",
            }
        )
    return {
        "profile": "data-package",
        "name": "nasmr",
        "title": TITLE,
        "description": description(manifest),
        "version": manifest.version,
        "created": _timestamp(manifest),
        "homepage": ORIGINAL_REPOSITORY,
        "licenses": [{"path": LICENCE_URL, "title": LICENCE_TERMS}],
        "sources": [
            {"title": "NAS-Bench-MR (Ding et al., ICLR 2022)", "path": ORIGINAL_REPOSITORY}
        ],
        "resources": resources,
    }


CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
"""The standard JSON-LD context of Croissant 1.0 (the one ``mlcroissant`` expects)."""

CROISSANT_1_0 = "http://mlcommons.org/croissant/1.0"

CROISSANT_PARQUET = "application/x-parquet"
"""The Parquet media type Croissant readers recognise (the Data Package gives IANA's)."""

DUCKDB_FORMAT = "https://duckdb.org/docs/stable/internals/storage"
"""DuckDB's file format has no media type; Croissant then names it by a URL."""

_CROISSANT_TYPES = {
    "boolean": "sc:Boolean",
    "integer": "sc:Integer",
    "number": "sc:Float",
    "string": "sc:Text",
    "datetime": "sc:DateTime",
    "date": "sc:Date",
}
"""Croissant 1.0 data type of each Table Schema type (1.0 has none for arrays)."""


def _croissant_type(table: str, field: pa.Field) -> str:
    """The Croissant data type of a Parquet column; a type 1.0 cannot say is refused."""
    kind = _field_type(field.type)
    if kind not in _CROISSANT_TYPES:
        raise ReleaseError(
            f"column {table}.{field.name}: Arrow type {field.type} has no Croissant 1.0 dataType"
        )
    return _CROISSANT_TYPES[kind]


def _file_object(root: Path, rel: str, encoding: str) -> dict[str, Any]:
    """A Croissant ``cr:FileObject`` for a release file: path, size, format and sha256."""
    return {
        "@type": "cr:FileObject",
        "@id": rel,
        "name": rel,
        "contentUrl": rel,
        "contentSize": f"{(root / rel).stat().st_size} B",
        "encodingFormat": encoding,
        "sha256": sha256_file(root / rel),
    }


def _references(table: str) -> dict[str, str]:
    """Croissant field id referenced by each column of ``table`` (from ``FOREIGN_KEYS``)."""
    return {
        column: f"{key['reference']['resource']}/{target}"
        for key in FOREIGN_KEYS.get(table, [])
        for column, target in zip(key["fields"], key["reference"]["fields"], strict=True)
    }


def _record_set(root: Path, table: str) -> dict[str, Any]:
    """A Croissant ``cr:RecordSet`` for a table: a field per column, read from its Parquet
    file; a foreign-key column names the field it references."""
    rel = f"{PARQUET_DIR}/{table}.parquet"
    references = _references(table)
    fields = [
        {
            "@type": "cr:Field",
            "@id": f"{table}/{field.name}",
            "name": field.name,
            "description": COLUMN_DOCS.get(table, {}).get(field.name, ""),
            "dataType": _croissant_type(table, field),
            "source": {"fileObject": {"@id": rel}, "extract": {"column": field.name}},
        }
        | (
            {"references": {"field": {"@id": references[field.name]}}}
            if field.name in references
            else {}
        )
        for field in pq.read_schema(root / rel)
    ]
    keys = [{"@id": f"{table}/{column}"} for column in PRIMARY_KEYS.get(table, [])]
    return {
        "@type": "cr:RecordSet",
        "@id": table,
        "name": table,
        "description": TABLE_DOCS.get(table, ""),
        "field": fields,
    } | ({"key": keys} if keys else {})


def croissant(root: Path, manifest: ReleaseManifest) -> dict[str, Any]:
    """Croissant 1.0 metadata: the Parquet tables and DuckDB file, one record set per table.

    The archive is not listed: it holds this file, so this file cannot hold its checksum.
    """
    tables = sorted(manifest.tables)
    files = [_file_object(root, f"{PARQUET_DIR}/{t}.parquet", CROISSANT_PARQUET) for t in tables]
    return {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CROISSANT_1_0,
        "name": TITLE,
        "description": description(manifest),
        "version": manifest.version,
        "datePublished": _timestamp(manifest),
        "url": ORIGINAL_REPOSITORY,
        "license": [
            {
                "@type": "sc:CreativeWork",
                "name": LICENCE_TERMS,
                "url": LICENCE_URL,
                "description": f"The original repository's LICENSE file is the {LICENCE} "
                "text; its README restricts that licence to academic use.",
            }
        ],
        "creator": {
            "@type": "sc:Organization",
            "name": "the nasmr project",
            "description": "Made this release from the NAS-Bench-MR data of Ding et al.; "
            "it is not an official release of the original authors.",
        },
        "citeAs": f"{BIBTEX}\n\n{_release_bibtex(manifest, sha256_file(root / MANIFEST))}",
        "distribution": [*files, _file_object(root, WAREHOUSE_NAME, DUCKDB_FORMAT)],
        "recordSet": [_record_set(root, t) for t in tables],
    }


def _markdown_table(frame: pd.DataFrame) -> str:
    """A pandas frame as a GitHub markdown table (no index)."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = [
        "| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *rows])


def _release_bibtex(manifest: ReleaseManifest, manifest_sha256: str) -> str:
    """A BibTeX entry for this release, so a paper can name the exact data it used."""
    commit = manifest.code_version.git_commit or "unknown"
    return f"""@misc{{nasmr_release_{manifest.version.replace(".", "_")},
  author = {{{{The nasmr project}}}},
  title = {{{{NAS-Bench-MR, curated: release {manifest.version}}}}},
  year = {{{manifest.created_at.year}}},
  version = {{{manifest.version}}},
  howpublished = {{nasmr {manifest.code_version.package} (git commit {commit}), from the
                  NAS-Bench-MR data of Ding et al. (ICLR 2022), {ORIGINAL_REPOSITORY}}},
  note = {{{MANIFEST} sha256 {manifest_sha256};
          input content hash {manifest.content_hash}}}
}}"""


def _caveats(root: Path) -> str:
    """What the drop leaves open or the numbers show that a reader could misread: setting
    names, ties at the published rounding, seg against seg-4x."""
    results = read_table(root, "results")
    primaries = results["setting"].map({name: s.primary_metric for name, s in SETTINGS.items()})
    primary = results[results["metric"] == primaries]
    levels = primary.groupby("setting", sort=False)["value"].agg(
        distinct="nunique", tied_best=lambda v: int((v == v.max()).sum())
    )
    counts = ", ".join(f"{s} {row.distinct}" for s, row in levels.iterrows())
    tied = [f"{s} ({row.tied_best})" for s, row in levels.iterrows() if row.tied_best > 1]
    lines = [
        "- The drop names its settings and defines them no further: the data column above "
        "reads the names (classes, images per class) and what is known of the benchmark's "
        "design, not a statement of the drop.",
        f"- Values are rounded as published, so ties are common. Distinct values of each "
        f"primary metric: {counts}. The best value is shared by several architectures in: "
        f"{', '.join(tied) or 'none'}. Break ties explicitly (`Benchmark.best` prefers fewer "
        "FLOPs, then search-list order).",
    ]
    seg = primary[primary["setting"].isin(["seg", "seg-4x"])].pivot(
        index="code", columns="setting", values="value"
    )
    if {"seg", "seg-4x"} <= set(seg.columns):
        both = seg.dropna()
        lower = (both["seg-4x"] < both["seg"]).mean()
        gap = (both["seg"] - both["seg-4x"]).mean()
        lines.append(
            f"- seg-4x's mIoU is below seg's for {lower:.1%} of architectures, by "
            f"{gap:.2f} points on average: whatever its '4x' means, it is not the same "
            "training run made longer."
        )
    return "\n".join(lines)


def _model_outputs(root: Path, manifest: ReleaseManifest) -> str:
    """The datasheet's account of the model outputs: what each kind of file is, and the data
    version they record."""
    if not manifest.extras:
        return "This release holds no model outputs (predictors, NCP results, reports)."
    files = relative_files(root)
    kinds = {
        glob: doc
        for glob, doc in MODEL_OUTPUT_DOCS.items()
        if any(fnmatch(rel, glob) for rel in files)
    }
    listing = "\n".join(f"- `{glob}`: {doc}." for glob, doc in kinds.items())
    return f"""{listing}

They were made from this release's data: each records the data version
`{warehouse_version(root / WAREHOUSE_NAME)}` (`nasmr.warehouse.warehouse_version` of
`{WAREHOUSE_NAME}`). The predictors' inputs and network are nasmr's: load them with nasmr
{manifest.code_version.package} (and torch), not with other tools. The saved models are
split seed 0's, trained on that seed's train architectures (each card's `split`): their
predictions of those architectures are fits, not held-out estimates, and NCP's predicted
metrics can lie above every measured value where the predictor extrapolates."""


def datasheet(root: Path, manifest: ReleaseManifest) -> str:
    """The release's README.md: a datasheet (Gebru et al.'s seven sections) from its tables."""
    report = read_table(root, "ingest_report").dropna(subset=["setting"])
    report["task"] = [SETTINGS[s].task.value for s in report["setting"]]
    report["data"] = [SETTINGS[s].description for s in report["setting"]]
    report["metrics"] = [", ".join(SETTINGS[s].metrics) for s in report["setting"]]
    columns = ["setting", "task", "data", "metrics", "status", "read", "valid", "quarantined"]
    settings = report[columns]
    complexity = read_table(root, COMPLEXITY)
    compared = complexity["match"].notna()
    matched = int(complexity.loc[compared, "match"].astype(bool).sum())
    methods = ", ".join(sorted(complexity["method"].dropna().unique())) or "none"
    quarantined = manifest.tables["quarantine"].rows
    tables = pd.DataFrame(
        {
            "table": list(manifest.tables),
            "rows": [t.rows for t in manifest.tables.values()],
            "content": [TABLE_DOCS.get(name, "") for name in manifest.tables],
        }
    )
    missing = "\n".join(
        f"- `{row.setting}` has no results: its file `{row.source_file}` is "
        + ("not in the raw drop." if row.status == "missing" else f"unreadable ({row.reason}).")
        for row in report.itertuples(index=False)
        if row.status != "ok"
    )
    unevaluated = "\n".join(f"  - `{code}`" for code in manifest.unevaluated_codes)
    nb201 = read_table(root, "nb201_results")
    nb201_costs = (
        "- NAS-Bench-201 `Flops` and `Params` are the costs of the cell on NAS-Bench-201's "
        "CIFAR-100 network, not on the ImageNet16-120 network that `Acc` measures; "
        f"{int((~nb201['cost_matches_cell']).sum())} cells carry another cell's costs "
        "(`cost_matches_cell` false). Both are as published. The drop does not name the "
        "cell's ops: their names are inferred from the data; each `Acc` is a whole number "
        "of 1/30 % (correct images out of 3,000), and the drop says neither which "
        "evaluation half nor which epoch.\n"
        if len(nb201)
        else ""
    )
    predictors = (
        _markdown_table(pd.DataFrame(list(manifest.predictor_metrics)).round(3))
        if manifest.predictor_metrics
        else "No predictors were trained for this build."
    )
    extras = ", ".join(f"`{name}/`" for name in manifest.extras) or "none"
    unsuited = [
        "latency or energy claims (none were measured)",
        "comparisons with FLOPs counted under another convention",
    ]
    if not (report.loc[report["setting"] == "3ddet", "valid"] > 0).any():
        unsuited.append("3D-detection claims (no results)")  # a drop may yet publish them
    *others, last = unsuited
    unsuited_text = f"{', '.join(others)}{',' if len(others) > 1 else ''} or {last}"
    return f"""# NAS-Bench-MR, curated: release {manifest.version}

Created {manifest.created_at.isoformat()} by nasmr {manifest.code_version.package}
(git commit {manifest.code_version.git_commit or "unknown"}). Previous release:
{manifest.previous_version or "none"}. Input content hash: `{manifest.content_hash}`.

Check this folder with `sha256sum -c {SUMS}` or `nasmr release verify <folder>`.
Query it with `nasmr.api.Benchmark.open("<folder or version>")`, with DuckDB
(`{WAREHOUSE_NAME}`, read-only; storage format {STORAGE_FORMAT}, so DuckDB 1.0 or later)
or with any Parquet reader (`{PARQUET_DIR}/`).

## Motivation

NAS-Bench-MR (Ding et al., ICLR 2022) evaluates one set of multi-resolution
networks on several vision tasks so that neural architecture search can be
studied across tasks. Its authors published the results as Python pickles
without schema, checksums or documentation. This release turns that drop into
validated, typed and versioned tables with exact FLOPs and parameter counts, so
that results are reproducible and citable by version. It was made by the nasmr
project; it is not an official release of the original authors.

## Composition

Each instance is one architecture of the NAS-Bench-MR space (a stem, four
multi-resolution stages and a head; 27 integers, see `architectures`), with its
metric values per setting; plus the {manifest.tables["nb201_results"].rows} NAS-Bench-201
cells shipped in the same drop.

{_markdown_table(settings)}

Tables (Parquet in `{PARQUET_DIR}/`, the same tables in `{WAREHOUSE_NAME}` with the
views {", ".join(f"`{v}`" for v in manifest.views)}):

{_markdown_table(tables)}

Known gaps:

{missing or "- none: every setting of the design has results."}
- {len(manifest.unevaluated_codes)} search-list architectures have no result in any setting:
{unevaluated}
- {quarantined} records failed validation and are listed in `quarantine`, not in the results.
{nb201_costs}
Read with care:

{_caveats(root)}

## Collection process

The original authors trained every architecture with their forks of OpenMMLab's
mmclassification and mmsegmentation (and OpenPCDet for 3D detection) and
published the final metrics; the training logs are not part of the drop. This
release was ingested from these files of the drop (paths relative to it):

{_markdown_table(pd.DataFrame([s.model_dump() for s in manifest.sources]))}

## Preprocessing, cleaning, labelling

Every record was validated (types, finite values, ranges, and agreement of the
embedding with the network setting); rejected records go to `quarantine` with
the field and the reason. Architectures are keyed by their 31-int code string.
Results are stored long (`code, setting, metric, value`). FLOPs and parameters
were recomputed ({methods}) and compared with the published values:
{matched} of {int(compared.sum())} architectures match exactly. Convention:
{manifest.flops_convention}

## Uses

Intended: benchmarking architecture search and performance predictors on
NAS-Bench-MR, transfer across its tasks, and cost-aware search against the
exact FLOPs. Not suited to: {unsuited_text}.
Predictor test metrics in this release (over the split seeds, to three decimals;
unrounded in `{MANIFEST}`'s `predictor_metrics`):

{predictors}

## Model outputs

{_model_outputs(root, manifest)}

## Distribution

This folder and its archive `{archive_name(manifest.version)}` hold: `{PARQUET_DIR}/`,
`{WAREHOUSE_NAME}`, `{MANIFEST}`, `{DATAPACKAGE}` (Frictionless Data Package),
`{CROISSANT}` (Croissant 1.0), `{CHANGELOG}`, this datasheet and `{SUMS}`; optional
build outputs: {extras}.

Licence: the original NAS-Bench-MR data and code are distributed by their authors
at {ORIGINAL_REPOSITORY}, whose README states: {LICENCE_TERMS}. The
same terms govern this derived release, its model outputs included (the nasmr code that
made it is MIT-licensed). As that README restricts the licence to academic use, the
metadata files give these terms, not the SPDX identifier of the LICENSE file's text
({LICENCE}, {LICENCE_URL}), which asks redistributions to reproduce its notice:

```
{LICENCE_NOTICE}
```

If you use this data, cite the original benchmark:

```bibtex
{BIBTEX}
```

and this release, identified by its version and the sha256 of its `{MANIFEST}`, which
records every input file's sha256 and the nasmr code that made it (the archive's own
sha256, which a file inside the archive cannot hold, is its line in `{SUMS}`):

```bibtex
{_release_bibtex(manifest, sha256_file(root / MANIFEST))}
```

## Maintenance

Releases are immutable and semantically versioned: a schema change is a major
release, added or removed records a minor one, corrected values or changed model
outputs a patch. Corrections are published as new versions; `{CHANGELOG}` lists what
changed per setting, and which model-output files, since each previous release.
"""
