"""Nightly catalog sync: stock levels and SKU prices from files into Norce Connect.

An upstream system (ERP, PIM, WMS) drops two JSON-lines files every night, one object per line in the shape
of Norce Connect's ``ImportOnhands`` items (``PartNo``, ``WarehouseCode``, ``LocationCode`` required;
``OnhandValue``, ``IncomingValue``, ``NextDeliveryDate``, ...) and ``ImportSkuPriceLists`` items (``PartNo``,
``PriceListCode`` required; ``PriceSale``, ``PriceRecommended``, ...). This DAG imports both and waits until
Norce has finished the import jobs, failing with Norce's own error lines when a job fails.

* Norce writes only the fields a header's ``...FieldsThatAreSet`` lists. The stock import leaves it out, so
  the operator derives it from the fields in the file (and logs it); the price import lists its fields by
  name, which the operator checks against Norce's enum and sends as codes. Every line of a file then carries
  every field of the mask: an SKU with nothing incoming says ``"NextDeliveryDate": null``, which clears a stale
  date in Norce (a line without the field would be written empty too, and the operator warns about it).
* Every item is checked against Norce's published item schema before the first POST: a file with a missing
  ``LocationCode`` fails here, naming the line, not in Norce at 3 a.m.

* The file paths are DAG params: the defaults point at ``$NORCE_CATALOG_DIR`` (the bundled samples in
  ``data/`` when unset); trigger with ``{"onhands_path": "...", "prices_path": "..."}`` to import others.
* Imports are never posted twice: a task retry reconnects to the jobs it already created.
* ``FullFile`` stays ``False``: a full-file import deactivates everything it does not name.
* Parsing this file makes no network call and reads no connection.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_norce.operators.connect import NorceConnectImportOperator

CATALOG_DIR = os.environ.get("NORCE_CATALOG_DIR", str(Path(__file__).parent / "data"))
#: The Norce account the imports run as (Norce Admin > Accounts).
ACCOUNT_ID = 1

with DAG(
    dag_id="norce_nightly_catalog_sync",
    description="Stock and prices from nightly files into Norce Connect",
    schedule="30 2 * * *",  # 02:30 every night, after the ERP export
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "onhands_path": Param(
            f"{CATALOG_DIR}/onhands.jsonl",
            type="string",
            description="JSON-lines file of ImportOnhands items (PartNo, WarehouseCode, LocationCode, "
            "OnhandValue, ...)",
        ),
        "prices_path": Param(
            f"{CATALOG_DIR}/sku_prices.jsonl",
            type="string",
            description="JSON-lines file of ImportSkuPriceLists items (PartNo, PriceListCode, PriceSale, ...)",
        ),
    },
    tags=["norce", "connect"],
):
    import_stock = NorceConnectImportOperator(
        task_id="import_stock",
        import_method="Product/ImportOnhands",
        items_path="{{ params.onhands_path }}",
        # No SkuOnhandFieldsThatAreSet: derived from the fields present in the file.
        connect_header={"AccountId": ACCOUNT_ID, "FullFile": False},
        wait_for_completion=True,
        poll_interval=2,
    )
    import_prices = NorceConnectImportOperator(
        task_id="import_prices",
        import_method="Product/ImportSkuPriceLists",
        items_path="{{ params.prices_path }}",
        connect_header={
            "AccountId": ACCOUNT_ID,
            "FullFile": False,
            # Only these are written; a field of the file that this list leaves out draws a warning.
            "SkuPriceListFieldsThatAreSet": ["PriceSale", "PriceRecommended", "IsActive"],
        },
        wait_for_completion=True,
        poll_interval=2,
    )
    # Stock first: a price change for a SKU that just sold out should not go live before its stock does.
    import_stock >> import_prices
