"""The Python API: the same verbs as the CLI.

net = specc.load("net.cnn")
report = net.check()          # rows and totals, no torch involved
model = net.to_torch()        # an nn.Module named like the spec
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from .check import Report
from .errors import InputFileError, Source, SpeccError
from .ir import Network
from .pipeline import build, measure


class Net:
    """A parsed and expanded spec. Checking fills in shapes and counts."""

    def __init__(self, network: Network, source: Source):
        self.network, self.source = network, source
        self._report: Report | None = None

    @property
    def name(self) -> str:
        return self.network.name

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.network.input_shape

    def check(self, strict: bool = False) -> Report:
        """Shapes, parameters, MACs and receptive fields; raises SpeccError on any error."""
        if self._report is None or strict:
            self._report = measure(self.network, self.source, strict)
        return self._report

    def to_source(self, class_name: str | None = None) -> str:
        """A standalone Python file that builds this network with torch alone."""
        from .backends.python_source import generate

        self.check()
        with self._located():
            return generate(self.network, class_name)

    def to_torch(self):
        """An nn.Module whose children carry the spec's names; built from `to_source()`."""
        from .backends.torch import build

        self.check()
        with self._located():
            return build(self.network)

    @contextlib.contextmanager
    def _located(self):
        """Errors raised by a backend point into this spec's source."""
        try:
            yield
        except SpeccError as err:
            if err.source is None:
                err.source = self.source
            raise

    def __repr__(self) -> str:
        return f"<specc.Net {self.name} from {self.source.path}>"


def loads(text: str, path: str = "<string>") -> Net:
    source = Source(text, path)
    return Net(build(source), source)


def load(path: str | Path) -> Net:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(f"no such spec file: {path}", "check the path; specs end in .cnn") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as err:
        raise InputFileError(f"cannot read {path} as a spec: {err.__class__.__name__}", "a spec is a UTF-8 text file") from None
    return loads(text, str(path))
