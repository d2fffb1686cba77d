"""The scope fallback: Norce spells the production scope ``prod`` on its newest page, ``production`` on older
ones. A connection without a ``scope`` extra asks for ``prod``; on ``invalid_scope`` it asks once more with
``production``, keeps what worked and logs a warning. An explicit ``scope`` is never changed.

``tests/docs/test_examples_b.py`` runs :func:`main`; docs/tokens.md shows the part between the markers.
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow_provider_norce.exceptions import NorceAuthError
from airflow_provider_norce.hooks.norce import NorceHook
from airflow_provider_norce.simulator import NorceSimulator


def main() -> dict[str, Any]:
    """A tenant that accepts only ``production``: without a scope extra, then with ``scope = "prod"``."""
    # [START tok_scope]
    with NorceSimulator(allowed_scopes=("production",)) as sim:  # a Norce that knows only "production"
        connection = sim.connection_dict()
        os.environ["AIRFLOW_CONN_NORCE_DEFAULT"] = json.dumps(connection)
        NorceHook("norce_default").get_access_token()  # "prod" refused, "production" accepted; a WARNING
        print(sim.counters()["token_requests"])  # 2; later hooks of this process ask for "production" at once

        connection["extra"]["scope"] = "prod"  # an explicit scope is never changed: the refusal is an error
        os.environ["AIRFLOW_CONN_NORCE_EXPLICIT"] = json.dumps(connection)
        try:
            NorceHook("norce_explicit").get_access_token()
        except NorceAuthError as err:
            error = str(err)  # names the connection, the token URL and invalid_scope, and says what to fix
    # [END tok_scope]
    return {"token_requests": sim.counters()["token_requests"], "error": error}


if __name__ == "__main__":
    print(json.dumps(main()))
