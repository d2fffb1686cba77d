"""The Connect item check alone: microseconds per item, in memory and over a JSON-lines file.

``NorceConnectImportOperator`` checks every item against Norce's contract before the first POST, so the
check's cost per item bounds the import's speed. This times ``ItemChecker.scan`` (best of ``--repeat``)
over 100,000 ``Product/ImportOnhands`` items (the import benchmark's rows) held in a list and read from a
JSON-lines file (reading alone is timed too, and subtracted), and over nested ``Product/ImportProducts``
items (variants, SKUs, cultures, a standard price). With ``--baseline FILE`` (another version of
``item_validation.py``, e.g. ``git show REV:airflow_provider_norce/connect/item_validation.py > old.py``)
the same corpora are timed with it in the same run, and the two scans are compared field by field.

    python benchmarks/bench_item_check.py [--items 100000] [--products 20000] [--baseline old.py]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from bench_common import emit
from bench_import import item as onhand_item

from airflow_provider_norce.connect import item_validation
from airflow_provider_norce.connect.contracts import contracts
from airflow_provider_norce.connect.items import FileItems, ListItems


def product_item(i: int) -> dict[str, Any]:
    """A product with two variants of one SKU each: cultures, a standard price, flags of every type."""
    variants = [
        {
            "ManufacturerPartNo": f"MP-{i}-{v}",
            "SortOrderValue": v,
            "IsDangerousGoods": False,
            "Skus": [
                {
                    "PartNo": f"SKU-{i:07d}-{v}",
                    "Status": "Active",
                    "Type": 1,
                    "EanCode": f"{7300000000000 + i * 2 + v}",
                    "UnitOfMeasurementCount": 1,
                    "IsBuyable": True,
                    "ActualWeight": 0.25 * (v + 1),
                    "StartDate": "2026-01-01T00:00:00Z",
                    "StandardPrice": {
                        "PartNo": f"SKU-{i:07d}-{v}",
                        "PriceListCode": "STD",
                        "PriceSale": 99.5 + v,
                        "CostPurchase": 40,
                        "IsActive": True,
                    },
                    "Cultures": [{"CultureCode": "sv-SE", "Name": f"Storlek {v}"}],
                }
            ],
        }
        for v in range(2)
    ]
    return {
        "ManufacturerCode": "ACME",
        "Code": f"CL-{i}",
        "Variants": variants,
        "Cultures": [
            {"CultureCode": "sv-SE", "Name": f"Produkt {i}", "Description": "En produkt."},
            {"CultureCode": "en-GB", "Name": f"Product {i}", "Description": "A product."},
        ],
    }


def load(path: str) -> ModuleType:
    """Another version of ``item_validation.py`` as a module of its own (it imports only the package)."""
    spec = importlib.util.spec_from_file_location("baseline_item_validation", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def best(repeat: int, run: Any) -> tuple[float, Any]:
    """The fastest of ``repeat`` runs (seconds) and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def summary(scan: Any) -> tuple[Any, ...]:
    """What the operator reads from a scan, comparable between two versions of the checker."""
    usage = {name: (u.objects, dict(u.keys)) for name, u in scan.usage.items()}
    return scan.total, sorted(scan.invalid), scan.errors, scan.error_count, usage, scan.warnings()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", help="another item_validation.py to time in the same run")
    args = parser.parse_args()
    versions = {"result": item_validation}
    if args.baseline:
        versions = {"baseline": load(args.baseline), **versions}
    onhands = contracts().method("Product/ImportOnhands")
    products = contracts().method("Product/ImportProducts")
    stock = [onhand_item(i) for i in range(args.items)]
    nested = [product_item(i) for i in range(args.products)]
    with tempfile.TemporaryDirectory(prefix="norce-bench-check-") as folder:
        path = Path(folder) / "stock.jsonl"
        path.write_text("".join(json.dumps(i, separators=(",", ":")) + "\n" for i in stock), encoding="utf-8")
        read, _ = best(args.repeat, lambda: sum(1 for _ in FileItems(str(path), "bench").numbered()))
        figures: dict[str, Any] = {"items": args.items, "products": args.products,
                                   "read_jsonl_us_per_item": round(read / args.items * 1e6, 2)}  # fmt: skip
        scans: dict[str, list[Any]] = {}
        for name, module in versions.items():
            corpora = [
                ("onhands_list", onhands, lambda: ListItems(stock, "bench"), args.items),
                ("onhands_jsonl", onhands, lambda: FileItems(str(path), "bench"), args.items),
                ("products_list", products, lambda: ListItems(nested, "bench"), args.products),
            ]
            for corpus, contract, source, count in corpora:
                checker = module.ItemChecker(contract)
                seconds, scan = best(args.repeat, lambda: checker.scan(source()))  # noqa: B023
                figures[f"{name}_{corpus}_us_per_item"] = round(seconds / count * 1e6, 2)
                scans.setdefault(corpus, []).append(summary(scan))
            figures[f"{name}_onhands_check_only_jsonl_us_per_item"] = round(
                figures[f"{name}_onhands_jsonl_us_per_item"] - figures["read_jsonl_us_per_item"], 2
            )
        if args.baseline:
            figures["same_results"] = all(a == b for a, b in scans.values())
            for corpus in ("onhands_list", "products_list"):
                figures[f"speedup_{corpus}"] = round(
                    figures[f"baseline_{corpus}_us_per_item"] / figures[f"result_{corpus}_us_per_item"], 2
                )
    emit("item_check", figures)
    if args.baseline and not figures["same_results"]:
        sys.exit("the two versions' scans differ")


if __name__ == "__main__":
    main()
