"""`specc lsp`: the language server, so that an editor shows what `specc check` knows as you type.

One module a concern: `analysis` runs the library's own check on a document's text and keeps its
results (diagnostics, report rows by line, the syntax tree); `views` turns those into hover and
inlay-hint text; `complete` answers completion; `outline` finds blocks and named layers for go to
definition and the document outline; `server` wires them to pygls. Nothing here imports torch,
and no shape is worked out here: every figure comes from the checker's report.
"""

from .server import serve

__all__ = ["serve"]
