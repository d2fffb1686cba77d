"""Product ETL: read SKU prices from Norce Query, recompute the sale prices, import the result into Connect.

find      NorceOperator asks ``Application/ClientPriceLists`` for the price list whose ``Agreement`` (the code
          Connect calls ``PriceListCode``) is the ``price_list`` param: Query rows name price lists by their
          numeric ``PriceListId``, Connect imports by code.
extract   NorceQueryExportOperator streams that price list's rows of ``Products/ProductSkuPriceLists`` (``PartNo``,
          ``QtyBreak``, ``PriceRecommended``, ...) to a JSON-lines file;
transform a ``@task`` reads that file line by line and writes the price updates to another file (both streamed:
          memory stays flat however large the catalog is; only file paths travel through XCom);
load      NorceConnectImportOperator posts the updates with ``ImportSkuPriceLists`` and waits for the jobs. The
          items carry only ``PriceSale`` besides their keys, so the derived ``SkuPriceListFieldsThatAreSet`` is
          ``[PriceSale]``: nothing else of the price rows is touched.

The rule here (sale price = recommended price x ``price_factor``, rounded down to whole crowns) stands in for
whatever your pricing logic is. Parsing this file makes no network call and reads no connection.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_norce.operators.connect import NorceConnectImportOperator
from airflow_provider_norce.operators.norce import NorceOperator
from airflow_provider_norce.operators.query import NorceQueryExportOperator

WORK_DIR = os.environ.get("NORCE_ETL_DIR", "/tmp/norce-etl")
ACCOUNT_ID = 1


def price_list_id(answer: dict) -> int:
    """The one price list Query found for the code, or an error that says what to check."""
    rows = answer.get("value") or []
    if len(rows) != 1:
        raise ValueError(
            f"Application/ClientPriceLists has {len(rows)} price lists with that Agreement code; check the "
            "price_list param against the price list codes in Norce Admin"
        )
    return int(rows[0]["PriceListId"])


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
        "price_list": Param(
            "DEFAULT", type="string", description="Code of the price list whose prices are set"
        ),
        "price_factor": Param(0.9, type="number", minimum=0.1, maximum=1.0, description="Sale / recommended"),
    },
    tags=["norce", "query", "connect", "etl"],
):
    find = NorceOperator(
        task_id="find_price_list",
        endpoint="commerce/query/2.0/Application/ClientPriceLists",
        request_params={
            "$filter": "Agreement eq '{{ params.price_list }}'",
            "$select": "PriceListId,Agreement,CurrencyId",
        },
        response_filter=price_list_id,
    )

    extract = NorceQueryExportOperator(
        task_id="extract_prices",
        entity="Products/ProductSkuPriceLists",
        destination="{{ params.work_dir }}/{{ ds }}/sku_prices_in.jsonl",
        # the whole active price list, not a time window
        filter="PriceListId eq {{ ti.xcom_pull(task_ids='find_price_list') }} and IsActive eq true",
        select="PartNo,PriceListId,QtyBreak,PriceSale,PriceRecommended",
        orderby="PartNo",
    )

    @task
    def transform_prices(extract_summary: dict, params: dict | None = None) -> str:
        """Write one ImportSkuPriceLists item per price row with a recommended price; return the file path."""
        import json
        import math

        from airflow_provider_norce.query.files import write_rows_atomically

        params = params or {}
        price_list, factor = params["price_list"], float(params["price_factor"])
        source = extract_summary["path"]
        target = os.path.join(os.path.dirname(source), "sku_prices_out.jsonl")

        def updates():
            with open(source, encoding="utf-8") as lines:
                for line in lines:
                    row = json.loads(line)
                    if not row.get("PriceRecommended"):
                        continue
                    yield {
                        "PartNo": row["PartNo"],
                        "PriceListCode": price_list,
                        "QuantityBreak": row.get("QtyBreak") or 1,
                        "PriceSale": float(math.floor(row["PriceRecommended"] * factor)),
                    }

        rows = write_rows_atomically(target, updates())
        print(f"{rows} price updates for price list {price_list} written to {target}")
        return target

    prices_file = transform_prices(extract.output)
    find >> extract

    NorceConnectImportOperator(
        task_id="load_prices",
        import_method="Product/ImportSkuPriceLists",
        items_path=prices_file,
        connect_header={"AccountId": ACCOUNT_ID, "FullFile": False},
        batch_size=1000,
        wait_for_completion=True,
        poll_interval=2,
    )
