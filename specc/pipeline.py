"""The compiler's stages run in order: parse, expand, check. Here alone is decided when to stop.

Each stage reports into one `Diagnostics` sink and returns its best partial result; the rules
below say how far a spec with mistakes is taken, so that independent mistakes are reported in
one run and no mistake is reported that only follows from another.
"""

from __future__ import annotations

from .check import Report, check
from .errors import Diagnostics, Source, SpeccError, position
from .expand import argument_errors, expand
from .ir import Network
from .parse import parse_spec

STRICT_HINT = "pad, or pick F and S so that (W − F + 2P) is a multiple of S (an error, not a warning, under --strict)"


def build(source: Source) -> Network:
    """The network tree of `source`; raise SpeccError listing every mistake found on the way.

    Recovery rules:
    1. Syntax errors: the parser blanks each failing line (keeping its braces) and parses again,
       up to 20 errors, so later syntax errors are found too (parse.py). Where no blanking makes
       the file parse, they are shown in the order found (an unclosed '{' is found at the end).
    2. After syntax errors nothing is expanded, but the arguments of layers and groups outside
       every block are checked on the lines that still sit where the user put them (before the
       first blanked line that opened or closed a group; none after a '}' that closed nothing):
       `conv K 16` on one line and a stray '=' on another are both reported. Lines inside a block
       are not, as their words may be its parameters; nor are the block definitions, whose
       errors may be echoes of the lines that failed.
    3. Expansion errors: a statement that fails stands as an unknown group, and the network as far
       as it was built is shape-checked all the same, so an fc before flatten on line 4 and an
       unknown layer on line 5 are both reported. Nothing after an unknown output is checked (nor
       how a failed residual or concat joins), so no shape error follows from the first mistake.
       Where nothing can be trusted (no input shape, expansion cut short) no shape is checked.
    4. Shape errors: a layer that cannot take its input gives the shape it would give all the
       same where there is one (fc's K outputs), else an unknown output (check.py).
    5. Once a stage has found an error, only errors are shown: warnings wait for a clean spec.
    """
    diagnostics = Diagnostics()
    spec, intact_before = parse_spec(source, diagnostics)
    if diagnostics.has_errors and spec is None:
        raise SpeccError(diagnostics=diagnostics.items, source=source)  # as found: an unclosed '{' is found at the end
    if diagnostics.has_errors:
        argument_errors(spec, source, diagnostics, intact_before)
        raise _failure(diagnostics, source)
    network = expand(spec, source, diagnostics)
    if diagnostics.has_errors:
        if network is not None:
            check(network, diagnostics)
        raise _failure(diagnostics, source)
    return network


def measure(network: Network, source: Source, strict: bool = False) -> Report:
    """Shapes, counts and receptive fields of a network `build` gave; raise SpeccError on any error.

    A window that does not tile its input is a warning, kept in the report; `strict` makes it an error.
    """
    diagnostics = Diagnostics()
    report = check(network, diagnostics)
    errors, warnings = diagnostics.errors, diagnostics.warnings
    if strict:
        for w in warnings:
            w.severity, w.hint = "error", STRICT_HINT
        errors, warnings = sorted(errors + warnings, key=position), []
    if errors:
        raise SpeccError(diagnostics=errors, source=source)
    report.warnings = warnings
    return report


def _failure(diagnostics: Diagnostics, source: Source) -> SpeccError:
    return SpeccError(diagnostics=diagnostics.errors, source=source)
