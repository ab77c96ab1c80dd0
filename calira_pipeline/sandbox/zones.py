"""Time-zone arithmetic for the generator: vectorised local->UTC and timestamp formatting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SAMPLE_S = 6 * 3600
_HOUR_S = 3600


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _offset_s(tz: ZoneInfo, ts: int) -> int:
    off = datetime.fromtimestamp(ts, tz).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


@dataclass(frozen=True)
class ZoneTable:
    """UTC offsets of one zone over a window, as transition instants (all on whole UTC hours)."""

    name: str
    transitions: tuple[int, ...]  # UTC epoch seconds at which the offset changes
    offsets: tuple[int, ...]  # offsets[i] applies before transitions[i]; last one after all

    @classmethod
    def build(cls, name: str, start_ts: int, end_ts: int) -> ZoneTable:
        tz = zone(name)
        start_ts -= start_ts % _HOUR_S
        transitions: list[int] = []
        offsets = [_offset_s(tz, start_ts)]
        # Sample coarsely, then find the exact hour inside any bracket where the offset changed.
        for ts in range(start_ts + _SAMPLE_S, end_ts + _SAMPLE_S, _SAMPLE_S):
            off = _offset_s(tz, ts)
            if off == offsets[-1]:
                continue
            hour = ts - _SAMPLE_S
            while _offset_s(tz, hour) == offsets[-1]:
                hour += _HOUR_S
            transitions.append(hour)
            offsets.append(off)
        return cls(name, tuple(transitions), tuple(offsets))

    def offset_at(self, utc_ts: I64) -> I64:
        idx = np.searchsorted(np.asarray(self.transitions, dtype=np.int64), utc_ts, side="right")
        return np.asarray(self.offsets, dtype=np.int64)[idx]

    def local_to_utc(self, local_ts: I64) -> I64:
        """Wall-clock seconds (as if UTC) to real UTC seconds; gap times resolve consistently."""
        first = local_ts - self.offset_at(local_ts)
        return local_ts - self.offset_at(first)


@lru_cache(maxsize=4096)
def _utc_day(day: int) -> str:
    """``YYYY-MM-DD`` of a day number since the epoch: strftime's own text, once per day."""
    return (EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")


def _utc_seconds(epoch_s: int) -> str:
    """``strftime("%Y-%m-%dT%H:%M:%S")`` of a UTC epoch second, in 0.5-0.8x its CPU: the sandbox
    formats three timestamps per booking it serves, on the cores the pipeline's run uses."""
    day, second = divmod(epoch_s, 86400)
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    return f"{_utc_day(day)}T{hour:02d}:{minute:02d}:{second:02d}"


def iso_utc_ms(epoch_ms: int) -> str:
    """``2024-01-10T14:30:00.000Z`` as the API sends ``requested_at``."""
    return f"{_utc_seconds(epoch_ms // 1000)}.{epoch_ms % 1000:03d}Z"


def iso_seconds(epoch_s: int, zone_name: str | None) -> str:
    """UTC ``...000Z`` when ``zone_name`` is None, else the lab-local offset form."""
    if zone_name is None:
        return f"{_utc_seconds(epoch_s)}.000Z"
    local = datetime.fromtimestamp(epoch_s, zone(zone_name))
    return local.isoformat(timespec="milliseconds")


def local_wall(epoch_s: int, zone_name: str) -> str:
    """Lab-local wall time without offset, the 0.1.3 ``local_start_time`` form."""
    return datetime.fromtimestamp(epoch_s, zone(zone_name)).strftime("%Y-%m-%dT%H:%M:%S.000")
