"""Client-side request pacing: an optional fixed rate plus adaptive slow-down after 429s."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

# After a 429 the rate drops to a little under what the server recently let through (measured
# over _WINDOW_S). Only 429s for requests sent after the last cut count, so one wave of
# concurrent 429s cuts once (as TCP does per window); the rate then creeps back up per success,
# so a server-side limit is approached again only slowly.
_DECREASE = 0.9
_WINDOW_S = 1.0
_MIN_SPAN_S = 0.05
_RECOVERY_PER_SUCCESS = 0.001
_MIN_RPS = 0.2


class AdaptiveRateLimiter:
    """Spaces request starts (GCRA-style) at ``rate`` req/s; ``None`` means unlimited."""

    def __init__(self, max_rps: float | None, clock: Clock, sleep: Sleep) -> None:
        self.max_rps = max_rps
        self.rate: float | None = max_rps
        self._clock = clock
        self._sleep = sleep
        self._next_slot = 0.0
        self._last_cut = float("-inf")
        self._successes: deque[float] = deque(maxlen=4096)

    async def acquire(self) -> None:
        if self.rate is None:
            return
        now = self._clock()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / self.rate
        if slot > now:
            await self._sleep(slot - now)

    def recent_success_rps(self) -> float | None:
        """Successes per second over the last window; None until a window's worth is seen."""
        now = self._clock()
        while self._successes and self._successes[0] < now - _WINDOW_S:
            self._successes.popleft()
        if len(self._successes) < 2:
            return None
        span = max(now - self._successes[0], _MIN_SPAN_S)
        return len(self._successes) / span

    def on_rate_limited(self, sent_at: float) -> None:
        """Slow everyone down; the limited request itself waits out its own Retry-After."""
        now = self._clock()
        if sent_at < self._last_cut:
            return  # sent before the last cut: old news
        allowed = self.recent_success_rps()
        if allowed is None and self.rate is None:
            return  # nothing measured yet: the Retry-After wait alone has to do
        self._last_cut = now
        if allowed is None:
            target = (self.rate or 1.0) / 2
        else:
            target = allowed if self.rate is None else min(self.rate, allowed)
        self.rate = max(_MIN_RPS, target * _DECREASE)
        self._next_slot = max(self._next_slot, now + 1.0 / self.rate)

    def on_success(self) -> None:
        self._successes.append(self._clock())
        if self.rate is None:
            return
        self.rate *= 1.0 + _RECOVERY_PER_SUCCESS
        if self.max_rps is not None:
            self.rate = min(self.rate, self.max_rps)
