"""Product ETL: export SKUs with their prices, recompute the sale prices, import the result into Connect.

extract   NorceQueryExportOperator streams ``Products/ProductSkus`` with ``PriceLists`` to a JSON-lines file;
transform a ``@task`` reads that file line by line and writes the price updates to another file (both
          streamed: memory stays flat however large the catalog is; only file paths travel through XCom);
load      NorceConnectImportOperator posts the updates with ``ImportSkuPriceLists`` and waits for the jobs.

The rule here (sale price = recommended price x ``price_factor``, rounded down to whole crowns) stands in for
whatever your pricing logic is. Parsing this file makes no network call and reads no connection.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_norce.operators.connect import NorceConnectImportOperator
from airflow_provider_norce.operators.query import NorceQueryExportOperator

WORK_DIR = os.environ.get("NORCE_ETL_DIR", "/tmp/norce-etl")
ACCOUNT_ID = 1

with DAG(
    dag_id="norce_product_etl",
    description="Recompute SKU sale prices from Norce Query and import them with Norce Connect",
    schedule="0 4 * * *",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "work_dir": Param(WORK_DIR, type="string", description="Folder for the extract and the price file"),
        "price_list": Param("DEFAULT", type="string", description="The price list whose prices are set"),
        "price_factor": Param(0.9, type="number", minimum=0.1, maximum=1.0, description="Sale / recommended"),
    },
    tags=["norce", "query", "connect", "etl"],
):
    extract = NorceQueryExportOperator(
        task_id="extract_skus",
        entity="Products/ProductSkus",
        destination="{{ params.work_dir }}/{{ ds }}/skus.jsonl",
        filter="IsActive eq true",  # the whole active catalog, not a time window
        select="PartNo,IsActive",
        expand="PriceLists",
    )

    @task
    def transform_prices(extract_summary: dict, params: dict | None = None) -> str:
        """Write one ImportSkuPriceLists item per SKU price on the chosen price list; return the file path."""
        import json
        import math

        from airflow_provider_norce.export_files import write_rows_atomically

        params = params or {}
        price_list, factor = params["price_list"], float(params["price_factor"])
        source = extract_summary["path"]
        target = os.path.join(os.path.dirname(source), "sku_prices.jsonl")

        def updates():
            with open(source, encoding="utf-8") as lines:
                for line in lines:
                    sku = json.loads(line)
                    for price in sku.get("PriceLists") or []:
                        if price["PriceListCode"] != price_list or not price.get("PriceRecommended"):
                            continue
                        yield {
                            "PartNo": sku["PartNo"],
                            "PriceListCode": price_list,
                            "QuantityBreak": price.get("QuantityBreak") or 1,
                            "PriceSale": float(math.floor(price["PriceRecommended"] * factor)),
                            "PriceRecommended": price["PriceRecommended"],
                            "CurrencyCode": price.get("CurrencyCode"),
                            "IsActive": True,
                        }

        rows = write_rows_atomically(target, updates())
        print(f"{rows} price updates for price list {price_list} written to {target}")
        return target

    prices_file = transform_prices(extract.output)

    NorceConnectImportOperator(
        task_id="load_prices",
        import_method="Product/ImportSkuPriceLists",
        items_path=prices_file,
        connect_header={"AccountId": ACCOUNT_ID, "FullFile": False},
        batch_size=1000,
        wait_for_completion=True,
        poll_interval=2,
    )
