"""One export over the simulated link, in a fresh process (run by bench_export_network.py and
bench_backfill_resume.py); prints one JSON line.

    python benchmarks/export_network_task.py OUT [--max-concurrency N] [--slice-rows R]

``NorceQueryExportOperator`` writes every order of November 2026 (all applications: the same rows whatever the
concurrency) to the JSON-lines file ``OUT``. The process is its own so that its peak RSS is its own. Run twice
with the same arguments, the second run is "the same export" again: it finds the first one's staging folder
(``.<OUT's name>.norce-slices-<hex>/``) and fetches only the slices not yet committed, which is how the backfill
benchmark retries a killed export.
"""

from __future__ import annotations

import argparse

from bench_common import print_measured

#: Every order of the simulator's default data set (spread over November 2026): the filter the default window
#: gives for that month, so the never-updated orders (``Updated`` null) are placed by ``Created``.
START, END = "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"
WINDOW = f"(Updated ge {START} and Updated lt {END}) or (Updated eq null and Created ge {START} and Created lt {END})"


def export(out: str, max_concurrency: int | None, slice_rows: int | None) -> dict:
    """Run the operator as a task would; its XCom value plus the concurrency and slice size it used."""
    from airflow_provider_norce.operators.query import NorceQueryExportOperator

    options: dict = {}
    if max_concurrency is not None:
        options["max_concurrency"] = max_concurrency
    if slice_rows is not None:
        options["slice_rows"] = slice_rows
    op = NorceQueryExportOperator(
        task_id="export",
        destination=out,
        filter=WINDOW,
        filter_application=False,
        progress_interval=3600,
        **options,
    )
    result = op.execute({"params": {}})
    return {
        "rows": int(result["rows"]),
        "pages": result.get("pages"),
        "max_concurrency": op.max_concurrency,
        "slice_rows": op.slice_rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out")
    parser.add_argument("--max-concurrency", type=int, default=None, help="default: the operator's")
    parser.add_argument("--slice-rows", type=int, default=None, help="default: the operator's")
    args = parser.parse_args()
    # Imports and connection set-up cost the same for any row count: start the clock at the export.
    import airflow_provider_norce.operators.query  # noqa: F401

    print_measured(lambda: export(args.out, args.max_concurrency, args.slice_rows))


if __name__ == "__main__":
    main()
