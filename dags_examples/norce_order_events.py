"""Event-driven order export: new Norce orders are exported minutes after they are placed, not at midnight.

An ``AssetWatcher`` runs :class:`~airflow_provider_norce.triggers.orders.NorceNewOrdersTrigger` in the
triggerer while this DAG is unpaused. Every ``NORCE_ORDER_POLL_SECONDS`` it asks Norce Query for the newest
order of the connection's application (one ``$top=1`` request); when the newest Id passes the last one it
reported, it fires an asset event ``{"after": A, "through": T, ...}`` and this DAG runs. Its position lives in
the Airflow Variable ``norce_order_watch__norce_new_orders_watch``, so a triggerer restart neither loses nor
repeats orders; a new watch starts after the newest order (no history: export that with
``norce_order_export``).

Exactly once: ``plan_range`` exports from the highest Id already in a file (not from the event's ``after``),
or before the first file from the watch's ``origin`` (its first position, saved before any event), to the
highest ``through`` of the run's events, and skips when that is nothing new: a replayed event exports nothing
twice and a lost one, the first included, is covered by the next run. Files are named by their range
(``orders_<after>_<through>.jsonl``) and appear atomically; ``max_active_runs=1`` keeps two runs from
planning at once.

Parsing this file makes no network call and reads no connection.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, task

from airflow_provider_norce.operators.query import NorceQueryExportOperator
from airflow_provider_norce.triggers.orders import order_watcher

EXPORT_DIR = os.environ.get("NORCE_EXPORT_DIR", "/tmp/norce-exports")
ORDER_EVENTS_DIR = f"{EXPORT_DIR}/order_events"
POLL_SECONDS = float(os.environ.get("NORCE_ORDER_POLL_SECONDS", "60"))

NEW_ORDERS = Asset(
    name="norce_new_orders",
    watchers=[
        order_watcher(
            "norce_new_orders_watch",
            "norce_default",
            poll_interval=POLL_SECONDS,
            # Norce does not publish whether order Ids become visible in Id order: report only orders
            # created at least this long ago (0 trusts Id order).
            settle_seconds=float(os.environ.get("NORCE_ORDER_SETTLE_SECONDS", "0")),
        )
    ],
)

with DAG(
    dag_id="norce_order_events",
    description="New Norce orders, exported when the order watch reports them",
    schedule=[NEW_ORDERS],
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["norce", "query", "export", "events"],
):

    @task
    def plan_range(triggering_asset_events=None) -> dict:
        """The Ids to export: from the last exported Id to the newest the events report (skip if none)."""
        from airflow_provider_norce.query.order_ranges import (
            event_origin,
            event_ranges,
            exported_ranges,
            payloads_of,
            plan_range,
        )

        try:
            from airflow.sdk.exceptions import AirflowSkipException
        except ImportError:  # Airflow 3.0
            from airflow.exceptions import AirflowSkipException

        payloads = payloads_of(triggering_asset_events)
        events = event_ranges(payloads)
        planned = plan_range(events, exported_ranges(ORDER_EVENTS_DIR), origin=event_origin(payloads))
        if planned is None:
            raise AirflowSkipException(f"every order the events report is exported already: {events}")
        print(f"Exporting orders {planned.odata_filter} (events: {events})")
        return planned.as_dict()

    planned = plan_range()
    export = NorceQueryExportOperator(
        task_id="export_new_orders",
        entity="Orders/Orders",
        filter="Id gt {{ ti.xcom_pull(task_ids='plan_range')['after'] }}"
        " and Id le {{ ti.xcom_pull(task_ids='plan_range')['through'] }}",
        destination=ORDER_EVENTS_DIR + "/{{ ti.xcom_pull(task_ids='plan_range')['file'] }}",
        file_format="jsonl",
        expand="Items",
        orderby="Id",
    )
    planned >> export
