"""Exact FLOPs/params of every search-list architecture, recomputed from scratch."""

from dataclasses import dataclass

import dagster as dg
import pandas as pd

from nasmr.complexity import Complexity
from nasmr.ingest import recompute_complexity
from pipelines import staging
from pipelines.assets.ingest import architectures, load_search_list
from pipelines.metadata import check_result, table_metadata, timed
from pipelines.resources import BuildDir, BuildOptions


@dataclass(frozen=True)
class Recomputed:
    """Recomputed counts (``code, macs, params``) and the method that made them."""

    method: str
    counts: pd.DataFrame

    def as_dict(self) -> dict[str, Complexity]:
        """Code -> exact counts, the form ``nasmr.warehouse.assemble`` takes."""
        return {
            row.code: Complexity(int(row.macs), int(row.params))
            for row in self.counts.itertuples(index=False)
        }


def load_recomputed(build_dir: BuildDir) -> Recomputed:
    """The counts as the ``complexity`` asset staged them."""
    return staging.load(Recomputed, build_dir.staging("complexity"))


@dg.asset(group_name="ingest", deps=[architectures], kinds={"pytorch", "parquet"})
def complexity(
    context: dg.AssetExecutionContext, build_dir: BuildDir, options: BuildOptions
) -> dg.MaterializeResult:
    """MACs and params of every architecture: the supernet built and counted with thop, in
    parallel (``options.complexity_method='module'``), or the closed form ('analytic')."""
    codes = load_search_list(build_dir).architectures["code"].tolist()
    step = max(1, len(codes) // 20)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            context.log.info(f"complexity: {done}/{total} architectures counted")

    metadata: dict[str, object] = {}
    with timed(metadata):
        counts = recompute_complexity(codes, options.complexity_method, options.workers, progress)
    frame = pd.DataFrame(
        {
            "code": list(counts),
            "macs": [c.macs for c in counts.values()],
            "params": [c.params for c in counts.values()],
        }
    )
    staging.save(Recomputed(options.complexity_method, frame), build_dir.staging("complexity"))
    return dg.MaterializeResult(
        metadata={**metadata, **table_metadata(frame), "method": options.complexity_method}
    )


@dg.asset_check(
    asset=complexity,
    blocking=True,
    description="The recomputed FLOPs and params equal the closed form's, architecture by "
    "architecture.",
)
def analytic_count_agrees(build_dir: BuildDir) -> dg.AssetCheckResult:
    """Cross-check the recomputed counts against the analytic counter, architecture by
    architecture (trivially true when the analytic method made them)."""
    recomputed = load_recomputed(build_dir).as_dict()
    analytic = recompute_complexity(list(recomputed), "analytic")
    differ = pd.DataFrame(
        [
            {"code": code, "recomputed": str(recomputed[code]), "analytic": str(analytic[code])}
            for code in recomputed
            if recomputed[code] != analytic[code]
        ],
        columns=["code", "recomputed", "analytic"],
    )
    return check_result(differ, checked=len(recomputed))
