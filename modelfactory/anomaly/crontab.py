"""The daily anomaly batch on one machine: its crontab line, and installing it with ``crontab``.

The line runs ``modelfactory run anomaly`` for the day before (the schedule's
``lag_days``) at the schedule's time, appending to a log under ``MODELFACTORY_HOME``.
Installing replaces a previous modelfactory anomaly line (found by its marker comment)
and keeps every other line of the user's crontab.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from modelfactory.anomaly.schedule import DailySchedule
from modelfactory.errors import ModelFactoryError

MARKER = "# modelfactory: daily anomaly batch"


class CrontabError(ModelFactoryError):
    pass


def crontab_line(
    schedule: DailySchedule,
    home: Path,
    source: str = "",
    staging_url: str = "",
    executable: str | None = None,
    tracking_uri: str = "",
) -> str:
    """One crontab line (with its marker comment) that runs the daily batch."""
    program = executable or str(Path(sys.executable).with_name("modelfactory"))
    # cron passes '%' as a newline unless escaped.
    day = f'"$(date -u -d "{schedule.lag_days} day ago" +\\%F)"'
    args = [shlex.quote(program), "run", "anomaly", "--batch-date", day]
    if source:
        args += ["--data", shlex.quote(source)]
    if staging_url:
        args += ["--staging-url", shlex.quote(staging_url)]
    env = [f"MODELFACTORY_HOME={shlex.quote(str(home))}"]
    if tracking_uri:
        env.append(f"MLFLOW_TRACKING_URI={shlex.quote(tracking_uri)}")
    log = shlex.quote(str(home / "logs" / "anomaly-daily.log"))
    return f"{schedule.cron()} {' '.join(env)} {' '.join(args)} >> {log} 2>&1 {MARKER}"


def install_line(line: str, crontab: str | None = None) -> str:
    """Put ``line`` into the user's crontab, replacing an earlier modelfactory anomaly line."""
    program = crontab or shutil.which("crontab")
    if not program:
        raise CrontabError(
            "no `crontab` program on this machine (install cron); add this line to "
            f"your scheduler yourself:\n{line}"
        )
    current = subprocess.run([program, "-l"], capture_output=True, text=True)
    existing = current.stdout.splitlines() if current.returncode == 0 else []
    lines = [kept for kept in existing if MARKER not in kept] + [line]
    written = subprocess.run(
        [program, "-"], input="\n".join(lines) + "\n", capture_output=True, text=True
    )
    if written.returncode != 0:
        raise CrontabError(f"`crontab -` refused the new table: {written.stderr.strip()}")
    return "\n".join(lines)
