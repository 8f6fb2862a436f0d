"""`specc check` and `specc compile`: the verbs that read a spec and need no data."""

from __future__ import annotations

import json
import sys

import click


def _load(path: str):
    from ..api import load

    return load(path)


def _console():
    """Rich's console: the terminal's width (or $COLUMNS); piped output is 200 wide, unless $COLUMNS says otherwise."""
    import os

    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # rich would exit 1; the CLI's entry point makes a closed pipe exit 0
            self.quiet = True
            raise BrokenPipeError

    columns = os.environ.get("COLUMNS", "")
    if sys.stdout.isatty() or columns.isdigit():
        return _Console()  # rich reads $COLUMNS itself
    return _Console(width=200)


def _print_warnings(report, net) -> None:
    from ..errors import render_all

    if report.warnings:
        click.echo(render_all(report.warnings, net.source), err=True)


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--depth", type=click.IntRange(min=0), default=None, help="Fold groups nested deeper than this.")
@click.option("--strict", is_flag=True, help="Treat warnings (e.g. a stride that drops pixels) as errors.")
def check(spec: str, as_json: bool, depth: int | None, strict: bool):
    """Work out every shape, parameter and multiply-add of SPEC, without torch."""
    from .. import report as views

    net = _load(spec)
    report = net.check(strict=strict)
    _print_warnings(report, net)
    if as_json:
        click.echo(json.dumps(views.to_json(report), indent=2))
        return
    console = _console()
    # soft_wrap: lines that are still too wide run on rather than being cut or wrapped mid-figure
    console.print(views.table(report, depth, console.width), soft_wrap=True)
    console.print(views.totals(report), highlight=False, markup=False, soft_wrap=True)


@click.command(name="compile")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "--out", "output", type=click.Path(dir_okay=False), help="Write the Python file here.")
@click.option("--print", "show", is_flag=True, help="Show the generated source on the terminal.")
@click.option("--class-name", default=None, help="Name of the generated nn.Module class.")
def compile_(spec: str, output: str | None, show: bool, class_name: str | None):
    """Write SPEC as one standalone PyTorch file (needs only torch to run)."""
    from ..outputs import refuse_replacing

    refuse_replacing({"-o": output}, {"the spec": spec})
    if class_name is not None:  # before the spec, so that the message names the flag, not the file
        from ..backends.python_source import check_class_name

        check_class_name(class_name)
    net = _load(spec)
    source = net.to_source(class_name)
    if output:
        from pathlib import Path

        Path(output).write_text(source)
        click.echo(f"wrote {output}", err=True)
    if show or not output:  # raw, never through rich: a terminal's wrapping would cut lines of code mid-word
        click.echo(source, nl=False)


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "--out", "output", type=click.Path(dir_okay=False), required=True, help="Write here: .svg .png .pdf .dot")
@click.option("--depth", type=click.IntRange(min=0), default=None, help="Fold groups nested deeper than this, as check --depth.")
def draw(spec: str, output: str, depth: int | None):
    """Draw SPEC as a diagram through Graphviz: a box per layer, residuals and concats as forks and joins."""
    from ..draw import output_format, write
    from ..outputs import refuse_replacing

    refuse_replacing({"-o": output}, {"the spec": spec})
    output_format(output)  # before the spec, so that a wrong suffix is named as the flag's mistake
    write(_load(spec), output, depth)
    click.echo(f"wrote {output}", err=True)
