"""The daily batch schedule: its cron line, its next run times, and which day a run scores.

A run at 02:00 scores *yesterday's* rides (the day is complete by then). The KFP
recurring run takes the cron line (KFP wants six fields, seconds first); a plain
crontab / Kubernetes CronJob takes the five-field form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


@dataclass(frozen=True)
class DailySchedule:
    """Every day at ``hour:minute`` (in UTC unless another tz-aware ``now`` is used)."""

    hour: int = 2
    minute: int = 0
    lag_days: int = 1  # which day a run scores: run date minus lag_days

    def __post_init__(self):
        if not (0 <= self.hour < 24 and 0 <= self.minute < 60):
            raise ValueError(
                f"DailySchedule: hour must be 0-23 and minute 0-59, got {self.hour}:{self.minute}"
            )
        if self.lag_days < 0:
            raise ValueError(f"DailySchedule.lag_days must be >= 0, got {self.lag_days}")

    def cron(self, with_seconds: bool = False) -> str:
        """'0 2 * * *' (crontab, CronJob) or '0 0 2 * * *' (KFP recurring runs)."""
        line = f"{self.minute} {self.hour} * * *"
        return f"0 {line}" if with_seconds else line

    def next_runs(self, after: datetime | None = None, count: int = 3) -> list[datetime]:
        """The next ``count`` run times strictly after ``after`` (default: now, UTC)."""
        after = after or datetime.now(UTC)
        candidate = datetime.combine(
            after.date(), time(self.hour, self.minute), tzinfo=after.tzinfo
        )
        if candidate <= after:
            candidate += timedelta(days=1)
        return [candidate + timedelta(days=i) for i in range(count)]

    def batch_date_for(self, run_time: datetime) -> date:
        """The day of rides a run at ``run_time`` scores."""
        return run_time.date() - timedelta(days=self.lag_days)
