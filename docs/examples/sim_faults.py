"""Injecting Norce's failures into a simulator, and what the hook does about them.

``tests/docs/test_examples_b.py`` runs :func:`main`; docs/simulator.md shows the parts between the markers.
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow_provider_norce.hooks.norce import NorceHook
from airflow_provider_norce.simulator import NorceSimulator


def wait_out_a_429(sim: NorceSimulator) -> dict[str, Any]:
    """Two Query 429s with ``Retry-After: 1``: the hook waits them out and returns the page."""
    os.environ["AIRFLOW_CONN_NORCE_DEFAULT"] = json.dumps(sim.connection_dict())
    # [START sim_faults_429]
    hook = NorceHook("norce_default")
    sim.add_fault("query", "429", count=2, retry_after=1)  # the next two Query calls: 429, Retry-After: 1
    page = hook.run_json("commerce/query/2.0/Orders/Orders", params={"$top": 10})
    # WARNING, twice: "Norce answered 429 to GET ...; attempt 1 of 6, retrying in 1.0 s"
    print(len(page["value"]), sim.counters()["api_429"])  # 10 2
    # [END sim_faults_429]
    return {"rows": len(page["value"]), "counters": sim.counters()}


def steer(sim: NorceSimulator) -> dict[str, Any]:
    """Every kind of steering the simulator offers, once: faults waiting to fire, tokens revoked and expired."""
    # [START sim_faults_steer]
    sim.add_fault("query", "503", count=2)  # the next two Query calls
    sim.add_fault("api", "429", ratio=0.1, retry_after=5)  # 10 % of API calls, reproducible from the seed
    sim.add_fault("token", "timeout", count=1, delay=3)  # hold 3 s, then close without answering
    sim.add_fault("connect", "502", count=1, after_processing=True)  # job created, client sees a 502
    sim.add_fault("token", "token_answer", count=1, variant="expires_in_0")  # a real token, expires_in 0
    sim.add_fault("query", "next_link", count=1, location="https://other.example/x")  # a page links elsewhere
    sim.clear_faults()  # remove every fault not yet fired

    sim.revoke_tokens()  # every token issued so far answers 401 from now on
    sim.expire_tokens()  # every token issued so far has expired
    sim.issued_tokens()  # every token ever issued (for leak searches)
    sim.counters()  # token_requests, tokens_issued, token_429, api_429, api_401, jobs_created, requests
    sim.reset_counters()  # zero the counters (tokens, jobs and data stay)
    sim.reset_rate_limits()  # refill the token and Query buckets, as if a long pause had passed
    # [END sim_faults_steer]
    return sim.counters()


def main() -> dict[str, Any]:
    """Run both on one simulator; return what each saw."""
    with NorceSimulator(orders=100) as sim:
        waited = wait_out_a_429(sim)
        issued = sim.issued_tokens()
        steered = steer(sim)
        hook = NorceHook("norce_default")
        hook.run_json("commerce/metadata/1.1/GetApplication")  # 401 (revoked), one new token, the call again
        return {"waited": waited, "issued_before": issued, "steered": steered, "after": sim.counters()}


if __name__ == "__main__":
    print(json.dumps(main()))
