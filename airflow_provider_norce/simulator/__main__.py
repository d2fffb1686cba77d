"""``python -m airflow_provider_norce.simulator serve``: run the simulator for DAGs and tests in other processes.

Prints exactly one line, ``Norce simulator listening on http://127.0.0.1:PORT``, once the socket listens
(flushed, so a parent process can read it from a pipe), then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from airflow_provider_norce.simulator.server import NorceSimulator


def _rate_limit(text: str) -> tuple[float, int]:
    try:
        rate, burst = text.split(",")
        return float(rate), int(burst)
    except ValueError:
        raise argparse.ArgumentTypeError("use RATE_PER_SECOND,BURST, e.g. 20,40") from None


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (one ``serve`` command); each option's ``dest`` is the
    :class:`NorceSimulator` keyword it sets, so ``main`` passes them all through unchanged."""
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_norce.simulator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a Norce simulator until interrupted")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    serve.add_argument("--client-id", default="sim-client")
    serve.add_argument("--client-secret", default="sim-secret")
    serve.add_argument("--application-id", type=int, default=1234)
    serve.add_argument("--expires-in", type=int, default=600, help="token lifetime in seconds")
    serve.add_argument("--orders", type=int, default=10_000)
    serve.add_argument("--products", type=int, default=200)
    serve.add_argument("--customers", type=int, default=100)
    serve.add_argument("--seed", type=int, default=42)
    serve.add_argument("--token-burst", type=int, default=20)
    serve.add_argument(
        "--token-rate",
        type=float,
        default=3,
        dest="token_rate_per_minute",
        metavar="TOKEN_RATE",
        help="token requests refilled per minute",
    )
    serve.add_argument(
        "--no-retry-after", action="store_false", dest="retry_after", help="answer 429 without Retry-After"
    )
    serve.add_argument("--query-rate-limit", type=_rate_limit, default=None, metavar="RATE,BURST")
    serve.add_argument("--job-duration", type=float, default=1.0, help="seconds from Queued to the end state")
    serve.add_argument("--page-size", type=int, default=500)
    serve.add_argument(
        "--standard-jwt", action="store_true", help="tokens start with eyJ (see identity docs)"
    )
    serve.add_argument(
        "--allowed-scopes",
        type=lambda text: tuple(s for s in text.replace(",", " ").split() if s),
        default=argparse.SUPPRESS,
        metavar="SCOPES",
        help="token scopes this Norce accepts, e.g. 'prod,stage' (default: every spelling Norce used)",
    )
    serve.add_argument(
        "--require-field-masks",
        action="store_true",
        help="answer 400 to an import whose header lacks its ...FieldsThatAreSet (Norce: succeeds, writes none)",
    )
    serve.add_argument(
        "--job-insert-spelling",
        choices=("Insert", "Inserts", "both"),
        default="Insert",
        help="the Job/Get insert counter: Insert (docs), Inserts (.NET) or both",
    )
    serve.add_argument(
        "--onhand-set",
        default=argparse.SUPPRESS,
        help="Query entity set of stock rows (its 2.0 name is unpublished; default Products/ProductSkuOnHands)",
    )
    serve.add_argument(
        "--latency", type=float, default=0.0, help="seconds added before every answer (simulated network)"
    )
    serve.add_argument(
        "--latency-jitter",
        type=float,
        default=0.0,
        help="+- seconds drawn uniformly (seeded) around --latency",
    )
    serve.add_argument(
        "--bandwidth",
        type=float,
        default=None,
        metavar="BYTES_PER_SECOND",
        help="link-wide cap on answer bytes, shared by all connections (default: no cap)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, serve until a signal, return the exit code."""
    parser = build_parser()
    options = vars(parser.parse_args(argv))
    del options["command"]
    try:
        sim = NorceSimulator(**options)
    except ValueError as err:  # e.g. a negative --latency: a usage error (exit 2), not a traceback
        parser.error(str(err))
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sim.start()
    try:
        print(f"Norce simulator listening on {sim.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
