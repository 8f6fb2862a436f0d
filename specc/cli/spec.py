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

    if as_json:
        _check_json(spec, strict)
        return
    net = _load(spec)
    report = net.check(strict=strict)
    _print_warnings(report, net)
    console = _console()
    # soft_wrap: lines that are still too wide run on rather than being cut or wrapped mid-figure
    console.print(views.table(report, depth, console.width), soft_wrap=True)
    console.print(views.totals(report), highlight=False, markup=False, soft_wrap=True)


def _check_json(spec: str, strict: bool) -> None:
    """The report as JSON, its warnings among `diagnostics`; a bad spec's errors as the same list, exit 2."""
    from .. import report as views
    from ..errors import SpeccError

    try:
        net = _load(spec)
        report = net.check(strict=strict)
    except SpeccError as err:
        file = err.source.path if err.source is not None else spec
        click.echo(json.dumps({"diagnostics": views.diagnostics_json(err.diagnostics, file)}, indent=2))
        click.echo(views.diagnostics_summary(err.diagnostics, file), err=True)
        sys.exit(err.exit_code)
    _print_warnings(report, net)
    click.echo(json.dumps(views.to_json(report, net.source.path), indent=2))


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


@click.command(name="fmt")
@click.argument("paths", nargs=-1, required=True, metavar="FILE|DIR|-...")
@click.option("--check", "check_only", is_flag=True, help="Change nothing: show a diff and exit 1 where a file is not formatted.")
def fmt(paths: tuple[str, ...], check_only: bool):
    """Rewrite specs in specc's one layout; only the whitespace between tokens changes (- reads stdin, writes stdout)."""
    from ..errors import SpeccError

    codes, changed, unchanged = [], [], 0
    for path in paths:
        try:
            if path == "-":
                changed += _fmt_stdin(check_only)
                continue
            for file in _fmt_files(path):
                if _fmt_file(file, check_only):
                    changed.append(file)
                else:
                    unchanged += 1
        except SpeccError as err:  # reported, and the other files are still formatted
            click.echo(err.render(), err=True)
            codes.append(err.exit_code)
    _fmt_summary(changed, unchanged, len(codes), check_only)
    if codes:
        sys.exit(max(codes))
    if check_only and changed:
        sys.exit(1)


def _fmt_files(path: str):
    from ..fmt import spec_files

    return spec_files(path)


def _fmt_file(path, check_only: bool) -> bool:
    """Format one file (or show its diff); whether it was not formatted."""
    from ..fmt import format_text, read_spec, unified_diff, write_atomic

    text = read_spec(path)
    formatted = format_text(text, str(path))
    if formatted == text:
        return False
    if check_only:
        click.echo(unified_diff(text, formatted, str(path)), nl=False)
    else:
        write_atomic(path, formatted)
    return True


def _fmt_stdin(check_only: bool) -> list[str]:
    from ..fmt import format_text, unified_diff

    text = sys.stdin.read()
    formatted = format_text(text, "<stdin>")
    if not check_only:
        click.echo(formatted, nl=False)
    elif formatted != text:
        click.echo(unified_diff(text, formatted, "<stdin>"), nl=False)
    return ["<stdin>"] if formatted != text else []


def _fmt_summary(changed: list, unchanged: int, failed: int, check_only: bool) -> None:
    files = [str(path) for path in changed if path != "<stdin>"]
    if not files and not unchanged:  # standard input only, or nothing could be read
        return
    verb = "would reformat" if check_only else "reformatted"
    for file in files:
        click.echo(f"{verb} {file}", err=True)
    plural = "s" if len(files) != 1 else ""
    done = f"{len(files)} file{plural} {'would be ' if check_only else ''}reformatted"
    refused = f", {failed} refused" if failed else ""
    click.echo(f"{done}, {unchanged} already formatted{refused}", err=True)
