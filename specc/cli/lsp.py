"""`specc lsp`: the language server for editors, on standard input and output."""

from __future__ import annotations

import click


@click.command()
def lsp():
    """Run the .cnn language server on stdin/stdout (for VS Code, Neovim, Helix, Emacs)."""
    from ..lsp import serve

    serve()
