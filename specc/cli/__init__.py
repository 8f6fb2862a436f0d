"""The command line: parse arguments, call the library, render, exit with a named code.

One module per family of verbs; none imports torch at module level, so that
`specc check` and `specc predict` start fast. Every user mistake arrives here
as a SpeccError and leaves as a compiler-style message on stderr with exit
code 2 (a bad spec or input file) or 1 (anything else). A traceback means a
bug in specc.
"""

from __future__ import annotations

import sys

import click

from ..errors import EXIT_FAILURE, SpeccError
from . import ship, spec
from . import train as train_cli


class _Cli(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SpeccError as err:
            click.echo(err.render(), err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(EXIT_FAILURE)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="specc")
def main():
    """specc: convolutional networks written as text."""


main.add_command(spec.check)
main.add_command(spec.compile_)
main.add_command(ship.export)
main.add_command(ship.predict)
main.add_command(ship.bench)
main.add_command(train_cli.train)
main.add_command(train_cli.evaluate)
