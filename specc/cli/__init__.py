"""The command line: parse arguments, call the library, render, exit with a named code.

One module per family of verbs; none imports torch at module level, so that
`specc check` and `specc predict` start fast. Every user mistake arrives here
as a SpeccError and leaves as a compiler-style message on stderr with exit
code 2 (a bad spec or input file) or 1 (anything else). A traceback means a
bug in specc.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from ..errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, SpeccError

# verb -> (module, function): a verb's module is imported only when that verb runs or
# `--help` lists them, so `specc check` does not pay for the training flags' imports.
_VERBS = {
    "check": ("spec", "check"),
    "compile": ("spec", "compile_"),
    "draw": ("spec", "draw"),
    "fmt": ("spec", "fmt"),
    "train": ("train", "train"),
    "eval": ("train", "evaluate"),
    "export": ("ship", "export"),
    "predict": ("ship", "predict"),
    "bench": ("ship", "bench"),
    "import": ("importer", "import_"),
    "lsp": ("lsp", "lsp"),
    "explain": ("explain", "explain"),
    "report": ("explain", "report"),
}


class _Cli(click.Group):
    def list_commands(self, ctx):
        return list(_VERBS)

    def get_command(self, ctx, name):
        if name not in _VERBS:
            return None
        module, function = _VERBS[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), function)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SpeccError as err:
            click.echo(err.render(), err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:  # `specc check net.cnn | head -1`: the reader has what it wanted
            _stdout_to_devnull()
            sys.exit(EXIT_OK)
        except OSError as err:
            if err.filename is None:  # not about a path the user named: a bug to report, with its traceback
                raise
            # A folder that cannot be written, a path that is a file, a full disk: the machine's answer, not specc's bug.
            click.echo(f"error: {err.filename}: {err.strerror or err}", err=True)
            click.echo("  hint: choose a path you can write to (--out, -o), or free some space", err=True)
            sys.exit(EXIT_FAILURE)
        except MemoryError:
            _out_of_memory("")
        except RuntimeError as err:  # torch's allocators raise RuntimeError subclasses (torch.OutOfMemoryError on GPUs)
            if "out of memory" not in str(err).lower() and "can't allocate memory" not in str(err):
                raise
            _out_of_memory(str(err).splitlines()[0])


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so that Python's final flush of a closed pipe raises nothing more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _out_of_memory(detail: str) -> None:
    click.echo(f"error: out of memory{': ' + detail if detail else ''}", err=True)
    click.echo(
        "  hint: `specc check` shows the parameters and activations per sample; use fewer or smaller layers, or a smaller --batch-size",
        err=True,
    )
    sys.exit(EXIT_FAILURE)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="specc")
def main():
    """specc: convolutional networks written as text."""


def run() -> None:
    """The `specc` command: `main` in click's standalone mode, and an exact exit code after an interrupt."""
    try:
        main()
    except SystemExit as done:
        if done.code != EXIT_INTERRUPTED:
            _flush_stdout()
            raise
        # CPython remembers a KeyboardInterrupt that passed through code run from C (the PyRun_* calls
        # libraries make) even once specc has handled it, and would end the process by SIGINT (-2) rather
        # than with 130. Leave at once instead: every checkpoint is already written and renamed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)


def _flush_stdout() -> None:
    """Flush what is buffered; a reader that has gone (`| head -1`) is not a failure, so the exit code stands."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()
