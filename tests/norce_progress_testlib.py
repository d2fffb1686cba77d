"""Reading an operator's log lines in a test, as the task log gets them (a plain module: tests/ is no package).

Where ``self.log`` lines go outside a task run differs by Airflow version: Airflow 3.3 configures structlog to
print them to stdout (``capsys``), Airflow 3.0 leaves them to the standard logging handlers (``caplog``). The
lines are taken from whichever of the two carries the operators' records, never from both, so a test can count
them.
"""

from __future__ import annotations

import re
from typing import Any

#: A structlog console line: ``<timestamp> [info     ] <message> [<logger>] loc=...``.
_CONSOLE = re.compile(r"^\S+ \[\w+\s*\] (.*?) \[(airflow\.task\.operators\.[^\]]+)\]", re.M)
OPERATORS = "airflow.task.operators."


def operator_messages(capsys: Any, caplog: Any) -> list[str]:
    """The messages the operators logged since the last call, in order."""
    out = capsys.readouterr().out
    records = [r.getMessage() for r in caplog.records if r.name.startswith(OPERATORS)]
    caplog.clear()
    return records or [match.group(1) for match in _CONSOLE.finditer(out)]
