"""Network IR to a live nn.Module, by executing the generated Python source.

The source is registered with linecache under a file name of its own, so a
traceback or torch.compile's messages show the generated lines of the very
model that raised, even where several networks share one spec path (every
`specc.loads()` is `<string>`).
"""

from __future__ import annotations

import itertools
import linecache
import weakref

from ..ir import Network
from .python_source import class_name, generate

_builds = itertools.count(1)


def build(network: Network):
    """An nn.Module for `network`: the class `specc compile` would write, instantiated."""
    name = class_name(network)
    source = generate(network, name)
    filename = source_filename(network.source_path, next(_builds))
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict = {"__name__": f"specc_generated_{name}"}
    exec(compile(source, filename, "exec"), namespace)
    cls = namespace[name]
    # The lines stay for as long as the class (so every instance and copy) lives; then they go.
    weakref.finalize(cls, linecache.cache.pop, filename, None)
    model = cls()
    model.specc_source = source
    return model


def source_filename(path: str, build_number: int) -> str:
    """`<specc net.cnn #3>`: unique per build, one printable line whatever the path holds."""
    printable = "".join(c if c.isprintable() else repr(c)[1:-1] for c in path)
    return f"<specc {printable} #{build_number}>"
