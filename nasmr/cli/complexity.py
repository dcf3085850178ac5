"""``nasmr complexity CODE`` (FLOPs/params of one architecture) and ``nasmr complexity verify``."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import click

from nasmr.cli.options import complexity_option, existing_drop, raw_option, workers_option
from nasmr.complexity import ComplexityMethod
from schemas.settings import MR_SETTINGS


class _CodeOrCommand(click.Group):
    """A group whose first argument is a subcommand or, failing that, ``show``'s arguments.

    Options the group does not know are left in place for the command, so
    ``nasmr complexity --method module CODE`` works as ``show`` does, and
    ``nasmr complexity --method module verify`` as ``verify`` does (no code is
    spelled like a command).
    """

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = next((arg for arg in args if arg in self.commands), None)
        if name is None:
            first = next((arg for arg in args if not arg.startswith("-")), "")
            close = difflib.get_close_matches(first, list(self.commands), n=1)
            if close and not any(c.isdigit() for c in first):  # every code has digits
                ctx.fail(f"no command {first!r}; did you mean `nasmr complexity {close[0]}`?")
            return "show", self.commands["show"], args
        rest = list(args)
        rest.remove(name)
        return name, self.commands[name], rest


@click.group(cls=_CodeOrCommand, context_settings={"ignore_unknown_options": True})
def complexity() -> None:
    """Exact FLOPs (GMac) and params of architectures, as the benchmark publishes them.

    \b
    nasmr complexity CODE      count one architecture (same as: show CODE)
    nasmr complexity verify    recompute a drop's published values
    """


@complexity.command()
@click.argument("code")
@complexity_option("--method", default="analytic")
def show(code: str, complexity_method: ComplexityMethod) -> None:
    """Print the FLOPs and params of the architecture CODE (a search-list code string, or a
    nas-bench-201 cell: its ops or arch string, counted on the drop's CIFAR-100 network).
    """
    from nasmr.complexity import analytic_complexity, module_complexity, nb201_complexity
    from nasmr.space import Arch, ArchError
    from schemas.nb201 import ops_text, parse_ops

    try:
        arch = Arch.from_code(code)
    except ArchError as err:
        try:
            ops = parse_ops(code)
        except ValueError as cell_err:
            looks_like_a_cell = "|" in code or "~" in code  # MR codes use '_' and '-'
            raise click.ClickException(str(cell_err if looks_like_a_cell else err)) from err
        if complexity_method == "module":
            raise click.ClickException(
                "--method module builds MR supernets; a nas-bench-201 cell is counted in "
                "closed form (the default)"
            ) from err
        cell = nb201_complexity(ops)
        click.echo(f"cell    {ops_text(ops)} (nas-bench-201, CIFAR-100 network)")
        click.echo(f"FLOPs   {cell.macs / 1e6:.6f} MFLOPs ({cell.macs} multiply-accumulates)")
        click.echo(f"params  {cell.params / 1e6:.6f} M ({cell.params} parameters)")
        return
    count = module_complexity(arch) if complexity_method == "module" else analytic_complexity(arch)
    click.echo(f"code    {arch.code}")
    click.echo(f"FLOPs   {count.gmac:.9f} GMac ({count.macs} multiply-accumulates)")
    click.echo(f"params  {count.mparams:.6f} M ({count.params} parameters)")


@complexity.command()
@raw_option
@click.option(
    "--setting",
    type=click.Choice(MR_SETTINGS),
    default="seg",
    show_default=True,
    help="Whose trainval.pkl to check (every NAS-Bench-MR setting publishes the same values).",
)
@complexity_option("--method", default="analytic")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Check the first N only.")
@workers_option("Processes for --method module.")
def verify(
    raw_dir: Path,
    setting: str,
    complexity_method: ComplexityMethod,
    limit: int | None,
    workers: int | None,
) -> None:
    """Recompute the published FLOPs/params of a drop; exit 1 on any mismatch or bad record."""
    from nasmr.ingest import complexity_table, load_setting, recompute_complexity
    from nasmr.rawdrop import trainval_path

    load = load_setting(existing_drop(raw_dir), setting)
    if load.status != "ok":
        raise click.ClickException(f"{load.reason} (drop: {raw_dir})")
    published, bad = load.valid, load.quarantine
    if limit is not None:
        published = published[published["record_index"] < limit]
        bad = bad[bad["record_index"] < limit]
    codes = published["code"].tolist()
    if complexity_method == "module":
        with click.progressbar(length=len(codes), label="counting", file=sys.stderr) as bar:
            recomputed = recompute_complexity(
                codes, complexity_method, workers, lambda done, _total: bar.update(done - bar.pos)
            )
    else:
        recomputed = recompute_complexity(codes, complexity_method)
    table = complexity_table(published, recomputed, complexity_method)
    wrong = table[~table["match"].astype(bool)]
    click.echo(
        f"{trainval_path(raw_dir, setting)}: {len(table) - len(wrong)}/{len(table)} matched "
        f"({complexity_method}), {len(bad)} invalid records"
    )
    for row in wrong.itertuples(index=False):
        click.echo(
            f"mismatch {row.code}: published {row.published_macs} MACs, {row.published_params} "
            f"params; recomputed {row.recomputed_macs} MACs, {row.recomputed_params} params"
        )
    for row in bad.itertuples(index=False):
        click.echo(f"invalid record {row.record_index}: {row.field}: {row.reason}")
    if len(wrong) or len(bad):
        sys.exit(1)
