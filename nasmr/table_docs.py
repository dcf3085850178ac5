"""What every warehouse table and column holds, with units: one text for SQL, Parquet and releases.

The warehouse stores these as DuckDB table and column comments, and a release's
``datapackage.json`` and ``croissant.json`` give them as resource (record set) and field
descriptions, so a user of any of them finds the unit of a value next to it.
"""

from __future__ import annotations

from nasmr.space import EMBEDDING_COLUMNS, EMBEDDING_FIELDS
from schemas.nb201 import NB201_LEGEND

TABLE_DOCS: dict[str, str] = {
    "architectures": "The search list: one row per architecture, its 27 embedding values, size, "
    "and whether any setting evaluated it.",
    "results": "Every MR-setting metric value, long form: code, setting, metric, value.",
    "complexity": "Published vs recomputed multiply-accumulates and parameters per architecture.",
    "sources": "The raw files ingested: path relative to the drop, bytes, sha256, time.",
    "quarantine": "Records and codes rejected by validation, with the field and the reason.",
    "ingest_report": "Per file: status, records read, valid and quarantined.",
    "nb201_results": "NAS-Bench-201 cells (op index per edge, NAS-Bench-201 arch string) with "
    "Acc, Flops (MFLOPs) and Params (M) as in the drop.",
}
"""The warehouse tables and what each holds."""

_RESOLUTION = ("1/4", "1/8", "1/16", "1/32")
_WIDTH = "output channels, a multiple of 8 in [8, 128]"


def _embedding_doc(name: str, kind: str) -> str:
    """Description of one embedding position (``stage2.convs[1]`` -> its meaning and domain)."""
    if name.startswith("stem."):
        return f"stem convolution {int(name[-1]) + 1} (3x3, stride 2): {_WIDTH}"
    if name == "last_channel":
        return f"head: the 1x1 convolution before global pooling, {_WIDTH}"
    stage, part = name.split(".")
    k = stage.removeprefix("stage")
    if part == "repeats":
        return f"stage {k}: times its module is repeated, 1-4"
    b = int(part[part.index("[") + 1 : -1])
    where = f"stage {k}, branch {b} ({_RESOLUTION[b]} of the input resolution)"
    if kind == "count":
        return f"{where}: residual basic blocks per module, 1-4"
    return f"{where}: {_WIDTH}"


_SETTING = "benchmark setting (seg, seg-4x, cls-10c, ..., nas-bench-201)"
_SOURCE = "file relative to the raw drop (data/<setting>/trainval.pkl or data/search_list.txt)"

COLUMN_DOCS: dict[str, dict[str, str]] = {
    "architectures": {
        "code": "architecture code of search_list.txt (31 ints; key)",
        "search_index": "0-based line of the code in search_list.txt",
        **{
            column: _embedding_doc(name, kind)
            for column, (name, kind) in zip(EMBEDDING_COLUMNS, EMBEDDING_FIELDS, strict=True)
        },
        "n_modules": "modules in the network (sum of the four stages' repeats)",
        "n_blocks": "residual basic blocks in the network",
        "evaluated": "true when at least one setting published results for it",
    },
    "results": {
        "code": "architecture code (architectures.code)",
        "setting": "NAS-Bench-MR setting (seg, seg-4x, cls-10c, ..., video-p)",
        "metric": "mIoU, mAcc, aAcc (segmentation) or top1, top5 (classification, video)",
        "value": "the metric in percent, as published (rounded to two decimals, three for "
        "video and video-p; cls-10-1000's are all whole tenths)",
        "record_index": "0-based index of the record in the setting's trainval.pkl: the "
        "published order, which nasmr export trainval writes back",
    },
    "complexity": {
        "code": "architecture code (architectures.code)",
        "published_macs": "multiply-accumulates published (flops x 1e9, exact integer); "
        "null when unevaluated",
        "published_params": "parameters published (params x 1e6, exact integer); "
        "null when unevaluated",
        "recomputed_macs": "multiply-accumulates recounted for a 1x3x128x128 input, "
        "50-class head (thop 0.0.31 rules)",
        "recomputed_params": "parameters recounted (convolutions and BatchNorm)",
        "method": "how they were recounted: module (built supernet + thop) or analytic",
        "match": "both recounts equal the published ones; null when unevaluated",
    },
    "sources": {
        "kind": "trainval or search_list",
        "setting": f"{_SETTING}; null for the search list",
        "path": _SOURCE,
        "bytes": "file size in bytes",
        "sha256": "SHA-256 of the file, hex",
        "ingested_at": "when the build read it (UTC)",
    },
    "quarantine": {
        "setting": f"{_SETTING}; null for search-list codes",
        "source_file": _SOURCE,
        "record_index": "0-based index of the record (or line) in that file",
        "field": "the field that failed validation",
        "reason": "why it was rejected",
    },
    "ingest_report": {
        "setting": f"{_SETTING}; null for the row of data/search_list.txt",
        "source_file": _SOURCE,
        "status": "ok, missing (no file) or failed (the file could not be read)",
        "read": "records read",
        "valid": "records that passed validation",
        "quarantined": "records rejected (read = valid + quarantined)",
        "reason": "why the file is missing or failed; null when ok",
    },
    "nb201_results": {
        "record_index": "0-based index in the drop's nas-bench-201 trainval.pkl "
        "(the NAS-Bench-201 architecture index)",
        "ops": f"operation index per cell edge, '|'-separated ({NB201_LEGEND}; key)",
        "arch_str": "the cell in NAS-Bench-201's own string form",
        "Acc": "ImageNet16-120 accuracy in percent, as in the drop: a float32 of correct "
        "images out of 3,000, so compare round(Acc * 30) for ties and equality",
        "Flops": "MFLOPs as in the drop: multiply-accumulates / 1e6 of the cell's network on "
        "NAS-Bench-201's CIFAR-100 setup (32x32 input, 100 classes), not of the ImageNet16-120 "
        "network that Acc measures",
        "Params": "millions of parameters as in the drop, of the same CIFAR-100 network",
        "cost_matches_cell": "whether Flops and Params are this cell's own count "
        "(nasmr.complexity.nb201_complexity, to the drop's 2 and 3 decimals); false where the "
        "drop gives a cell another cell's costs",
    },
}
"""Description (with unit) of every column of every warehouse table."""


RESULTS_VIEW_DOC = (
    "One MR setting's results, wide: a row per evaluated architecture, a column per metric, "
    "and its published cost."
)
"""Description of every ``results_<setting>`` view."""

RESULTS_VIEW_COLUMN_DOCS: dict[str, str] = {
    "code": "architecture code (architectures.code)",
    "flops": "published GMac (multiply-accumulates / 1e9) of the architecture's "
    "classification-head network (50 classes) on a 1x3x128x128 input: the same value in "
    "every setting, not the cost of this setting's network (complexity.published_macs / 1e9)",
    "params": "published parameters / 1e6 of that network, the same in every setting "
    "(complexity.published_params / 1e6)",
}
"""Descriptions of the ``results_<setting>`` columns besides the metrics (see ``metric_doc``)."""

UNEVALUATED_DOC = "The search-list architectures no setting has results for."
"""Description of the ``unevaluated`` view (its columns are those of ``architectures``)."""


def metric_doc(metric: str) -> str:
    """Description of a metric column of a ``results_<setting>`` view."""
    return f"{metric} in percent, as published (results.value)"
