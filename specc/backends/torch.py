"""Network IR to a live nn.Module, by executing the generated Python source.

The source is registered with linecache under a readable file name, so a
traceback or torch.compile's messages show the generated lines.
"""

from __future__ import annotations

import linecache

from ..ir import Network
from .python_source import class_name, generate


def build(network: Network):
    """An nn.Module for `network`: the class `specc compile` would write, instantiated."""
    name = class_name(network)
    source = generate(network, name)
    filename = f"<specc {network.source_path}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict = {"__name__": f"specc_generated_{name}"}
    exec(compile(source, filename, "exec"), namespace)
    model = namespace[name]()
    model.specc_source = source
    return model
