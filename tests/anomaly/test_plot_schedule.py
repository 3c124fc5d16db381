"""The batch scatter PNG and the daily schedule helper."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from modelfactory.anomaly.detection import detect_outliers
from modelfactory.anomaly.plot import plot_batch
from modelfactory.anomaly.schedule import DailySchedule
from modelfactory.data.taxi import simulate_rides


def test_plot_writes_a_png(tmp_path):
    rides = detect_outliers(simulate_rides()).rides
    path = plot_batch(rides, tmp_path / "plots" / "day.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_daily_schedule():
    schedule = DailySchedule(hour=2, minute=30)
    assert schedule.cron() == "30 2 * * *"
    assert schedule.cron(with_seconds=True) == "0 30 2 * * *"
    now = datetime(2026, 11, 22, 2, 30, tzinfo=UTC)  # exactly a run time: next is tomorrow
    runs = schedule.next_runs(now, count=2)
    assert runs == [
        datetime(2026, 11, 23, 2, 30, tzinfo=UTC),
        datetime(2026, 11, 24, 2, 30, tzinfo=UTC),
    ]
    assert schedule.next_runs(datetime(2026, 11, 22, 1, 0, tzinfo=UTC), 1)[0].day == 22
    assert schedule.batch_date_for(runs[0]) == date(2026, 11, 22)
    with pytest.raises(ValueError, match="hour must be 0-23"):
        DailySchedule(hour=24)
