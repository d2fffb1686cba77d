"""The time window an incremental export covers when the user gives no ``filter``.

The rule (documented in the README, tested on Airflow 3.0 and 3.3):

1. A run with a non-empty data interval (``CronDataIntervalTimetable``, ``DeltaDataIntervalTimetable``,
   ``CronTriggerTimetable(..., interval=...)``) exports ``[data_interval_start, data_interval_end)``.
2. A run with an empty data interval (Airflow 3's plain cron schedules such as ``"@daily"`` use
   ``CronTriggerTimetable``, whose runs have ``start == end``) exports the schedule period that ends at the
   run: ``[previous schedule point before the run, logical date)``. A ``@daily`` run for 2026-11-20 therefore
   exports 2026-11-19T00:00Z up to (excluding) 2026-11-20T00:00Z, exactly like the data-interval timetable.
3. Anything else (``schedule=None``, asset-triggered runs) has no period: the export refuses to guess and
   asks for an explicit ``filter``.

Why not "since the last successful run" (``prev_data_interval_end_success``)? Because then the file of a given
run would depend on history: re-running or backfilling a day would export a different set of rows. With the
rule above a run's window depends on the run alone, so re-running it rewrites the same file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

UTC = dt.timezone.utc


def odata_timestamp(moment: dt.datetime) -> str:
    """ISO-8601 in UTC with ``Z``, as Norce Query compares ``DateTimeOffset`` values."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


@dataclass(frozen=True)
class ExportWindow:
    """A half-open time window ``[start, end)`` and the rule that produced it (for the log)."""

    start: dt.datetime
    end: dt.datetime
    rule: str

    def odata_filter(self, field: str, fallback: str | None = None) -> str:
        """``field ge <start> and field lt <end>``: every row exactly once across consecutive windows.

        With ``fallback`` (for example ``Created`` when ``field`` is the nullable ``Updated``), rows whose
        ``field`` is null are selected by ``fallback`` instead::

            (Updated ge A and Updated lt B) or (Updated eq null and Created ge A and Created lt B)

        Why: Norce leaves ``Updated`` null on rows never updated (``tests/norce_contracts/query.json
        incremental_sync``, third-party observation); a plain ``Updated`` window would never export them.
        Each row is still in exactly one of consecutive half-open windows: by ``field`` when it has one,
        else by ``fallback``.
        """
        start, end = odata_timestamp(self.start), odata_timestamp(self.end)
        primary = f"{field} ge {start} and {field} lt {end}"
        if not fallback or fallback == field:
            return primary
        return f"({primary}) or ({field} eq null and {fallback} ge {start} and {fallback} lt {end})"


def window_for_run(context: Any, task_id: str = "export") -> ExportWindow:
    """The default export window of the running task, from what its context offers (see module docs)."""
    start = _get(context, "data_interval_start")
    end = _get(context, "data_interval_end")
    if start is not None and end is not None and start < end:
        return ExportWindow(start, end, "the run's data interval")
    end = end or _get(context, "logical_date") or getattr(_get(context, "dag_run"), "run_after", None)
    dag = _get(context, "dag")
    timetable = getattr(dag, "timetable", None)
    previous = previous_schedule_point(timetable, end) if end is not None else None
    if end is None or previous is None:
        summary = getattr(timetable, "summary", None) or type(timetable).__name__
        raise ValueError(
            f"Task {task_id!r}: cannot derive the export window: the run has an empty data interval and "
            f"the DAG's schedule ({summary}) has no period to take instead. Give the operator an explicit "
            'filter (for example filter="Updated ge {{ params.since }}"), schedule the DAG with a cron '
            "expression or a timedelta, or set window_field=None to export the whole entity set."
        )
    return ExportWindow(previous, end, "the schedule period ending at the run (its data interval is empty)")


def previous_schedule_point(timetable: Any, end: dt.datetime) -> dt.datetime | None:
    """The schedule point before ``end`` of a cron or timedelta timetable; None for other timetables.

    Airflow 3.0 keeps the cron expression and time zone in ``_expression``/``_timezone`` of its core
    timetables; Airflow 3.3 hands tasks the SDK timetables with public ``expression``/``timezone``. Both are
    read, and the cron arithmetic (croniter, an Airflow dependency) is done here so DST is handled the same
    way on every version.
    """
    if timetable is None:
        return None
    expression = getattr(timetable, "expression", None) or getattr(timetable, "_expression", None)
    if isinstance(expression, str) and expression.strip():
        from croniter import croniter

        tz = getattr(timetable, "timezone", None) or getattr(timetable, "_timezone", None) or UTC
        if isinstance(tz, str):
            import pendulum

            tz = pendulum.timezone(tz)
        local_end = dt.datetime.fromtimestamp(end.timestamp(), tz)
        previous = croniter(expression, local_end).get_prev(dt.datetime)
        return previous.astimezone(UTC)
    delta = getattr(timetable, "delta", None) or getattr(timetable, "_delta", None)
    if isinstance(delta, dt.timedelta) and delta > dt.timedelta(0):
        return end - delta
    if delta is not None and not isinstance(delta, dt.timedelta):  # dateutil relativedelta
        return end - delta  # type: ignore[no-any-return]
    return None


def _get(context: Any, key: str) -> Any:
    try:
        return context.get(key)
    except Exception:  # a lazy context entry that this Airflow version cannot compute
        return None
