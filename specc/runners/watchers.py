"""What follows a run besides its reporter: TensorBoard event files (--tensorboard), report.html (--report).

A watcher has `epoch(run, row)`, called after each epoch's checkpoint, and
`finish(run, test)`, called once the test is done (test None without a test
split); `run` is train.py's _Run, on rank 0 only. The test's own pictures,
confusion.png and mistakes.png, are drawn first: all of this comes before
test.json, which stays the run's last write.
"""

from __future__ import annotations

from pathlib import Path


def watching(tensorboard: str | Path | None, report: bool) -> list:
    watchers = []
    if tensorboard is not None:
        from .tensorboard import Board

        watchers.append(Board(tensorboard))
    if report:
        from ..explain.page import LiveReport

        watchers.append(LiveReport())
    return watchers


def draw_test(run, test) -> None:
    """confusion.png and mistakes.png of a classifier's test, then the watchers' last word."""
    if test is not None and run.data.task.kind == "classes":
        from .mistakes import write_pictures

        write_pictures(run.learner.module, run.data.x["test"], run.data.y["test"], run.data.normalise, run.data.classes, run.run_dir)
    for watcher in run.watchers:
        watcher.finish(run, test)
