"""Ctrl-C and `kill` held back while a run writes its files.

An interrupt is a KeyboardInterrupt raised wherever Python happens to be. In
the middle of an epoch that is harmless: the run resumes from the last state.
While the epoch's files are written it is not: the first epoch's curves import
matplotlib, and an interrupt inside a C extension's initialisation leaves the
interpreter unable to finish (CPython aborts at exit, SIGABRT, not 130). So the
writes run with the signal noted rather than acted on, and it is delivered the
moment they are done, to whatever handler was there before.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_HELD = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Run the block to its end; a SIGINT or SIGTERM that came meanwhile is raised again after it."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    came: list[int] = []
    previous = {number: signal.signal(number, lambda signum, frame: came.append(signum)) for number in _HELD}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)  # None: a handler set outside Python
    if came:
        signal.raise_signal(came[0])
