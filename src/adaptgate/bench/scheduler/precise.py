"""Event loops whose timers fire on time.

asyncio waits for its next timer with ``epoll_wait``, whose timeout is in whole milliseconds
(rounded up), so every ``sleep`` and ``call_at`` ends on average half a millisecond late, up to a
whole one. A load generator dispatching on a schedule and a calibration server emitting tokens on
one both feel that. :class:`PreciseSelector` waits with ``select()`` on the epoll descriptor
itself instead: microsecond timeouts, and it still returns the moment any socket is ready.
"""

from __future__ import annotations

import asyncio
import select
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
FD_SETSIZE = 1024  # select() takes no higher descriptor; the epoll one is made first


class PreciseSelector(selectors.EpollSelector):
    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0 and self.fileno() < FD_SETSIZE:
            select.select([self.fileno()], [], [], timeout)  # wakes early on readiness
            timeout = 0
        return super().select(timeout)


def new_event_loop() -> asyncio.AbstractEventLoop:
    return asyncio.SelectorEventLoop(PreciseSelector())


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a loop with precise timers."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)
