"""One overall progress display for the long commands: step k of n, time spent, time left.

The function that plans a command's slow part opens the display with the whole plan
(`with overall_progress(steps, "cv", enabled):`); the code that does the work, wherever it
sits, moves it on with `step_done()`, which does nothing when no display is open. So the same
cross-validation counts its folds under `cv`, `ensemble` and `run` alike, and only the
outermost caller, which knows the plan, decides what n is.

Steps need not cost the same: a step of `weight` w counts w times towards the time estimate
(fine-tuning a text backbone takes as long as dozens of head fits), while "step k of n"
still counts steps. The display draws on stderr, and only when stderr is a terminal: in a
log file, a pipe or under `--quiet` nothing is drawn, so stdout stays the command's answer.
While it draws, the steps' own bars stay off (`inner_bars`): one display, not five.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

_active: Overall | None = None


def rate_column(unit: str):
    """A rich column: units done per second, averaged as the time estimate is."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class _Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed or 0:.1f} {unit}/s")

    return _Rate()


class Overall:
    """The open display: counts steps and weighted units, and draws them with rich."""

    def __init__(self, steps: int, units: float, what: str, rate: str | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.steps, self.done = steps, 0
        # With `rate`, the units are things worth counting (pairs): their speed is shown too.
        speed = [rate_column(rate)] if rate else []
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("step {task.fields[step]}"),
            *speed,
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            speed_estimate_period=3600,  # the estimate averages the whole run, not the last 30 s
        )
        self.task = self.bar.add_task(what, total=units, step=self.label())

    def label(self) -> str:
        return f"{self.done}/{self.steps}"

    def advance(self, steps: int, weight: float, what: str | None) -> None:
        self.done += steps
        fields = {"description": what} if what else {}
        self.bar.update(self.task, advance=steps * weight, step=self.label(), **fields)

    def note(self, text: str) -> None:
        self.bar.console.print(text, highlight=False, markup=False)


def drawable(enabled: bool) -> bool:
    """Whether a display would be drawn: asked for, and stderr is a terminal."""
    return enabled and sys.stderr.isatty()


@contextmanager
def overall_progress(
    steps: int, what: str, enabled: bool = True, units: float | None = None, rate: str | None = None
) -> Iterator[None]:
    """Open the display for a plan of `steps` steps (`units`: their total weight, default `steps`;
    `rate`: the units' name, to show how many are done per second, "pairs/s").
    Inside an open display this opens nothing: the outer plan counts these steps already."""
    global _active
    if _active is not None or steps <= 0 or not drawable(enabled):
        yield
        return
    _active = Overall(steps, units if units is not None else steps, what, rate)
    try:
        with _active.bar:
            yield
    finally:
        _active = None


def step_done(steps: int = 1, weight: float = 1.0, what: str | None = None) -> None:
    """`steps` more steps done, each of `weight` units; `what` names the stage now running."""
    if _active is not None:
        _active.advance(steps, weight, what)


def progress_units(units: float) -> None:
    """`units` more done within the current step (a batch of pairs): the bar, speed and estimate
    move before the step ends."""
    if _active is not None:
        _active.bar.update(_active.task, advance=units)


def progress_note(text: str, enabled: bool = True) -> None:
    """A line for the person watching (on stderr): above the display when one is open."""
    if not enabled:
        return
    if _active is not None:
        _active.note(text)
    else:
        print(text, file=sys.stderr, flush=True)


def inner_bars(enabled: bool) -> bool:
    """Whether a step may draw its own progress bars: not while the overall display draws."""
    return enabled and _active is None
