"""An output never replaces an input: `specc compile net.cnn -o net.cnn` would destroy the spec it reads.

Paths are compared as the file system sees them (os.path.samefile: the same device and inode), so a
hard link, a symlink or another spelling of the same path is caught as well as the same name. No
torch here: `compile` and `export` call this before anything else.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import EXIT_BAD_SPEC, SpeccError

PathLike = str | os.PathLike
Named = dict[str, PathLike | None] | list[tuple[str, PathLike | None]]


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether `a` and `b` are one existing file. A path that does not exist yet holds nothing to lose."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # a missing file, a name the system cannot take
        return False


def refuse_replacing(outputs: Named, inputs: Named) -> None:
    """Exit 2, before anything is written, where an output is one of the inputs.

    Both go from how the user named the file (`-o`, `the spec`) to its path; None: not given.
    """
    for out_label, output in _pairs(outputs):
        for in_label, source in _pairs(inputs):
            if output is not None and source is not None and same_file(output, source):
                relation = "is" if Path(output) == Path(source) else "is the same file as"
                named = f"{out_label} {Path(output)} {relation} {in_label} {Path(source)}"
                raise SpeccError(
                    f"{named}: writing it would destroy that input; nothing was written",
                    hint="choose another name for the output",
                    exit_code=EXIT_BAD_SPEC,
                )


def _pairs(named: Named) -> list[tuple[str, PathLike | None]]:
    return list(named.items()) if isinstance(named, dict) else list(named)
