"""Testing your own code with the pytest plugin's ``norce_simulator`` fixture.

The plugin is registered when the package is installed (entry point ``pytest11: norce``), so a test only
names the fixture. ``tests/docs/test_examples_b.py`` runs this file with pytest; docs/simulator.md shows it.
"""

# [START sim_pytest]
import pytest

from airflow_provider_norce.hooks.norce import NorceHook


@pytest.mark.norce_simulator(orders=1000, page_size=100)  # any NorceSimulator keyword argument
def test_every_order_is_read_with_one_token(norce_simulator):
    # AIRFLOW_CONN_NORCE_DEFAULT already points at the simulator
    hook = NorceHook(norce_simulator.conn_id)
    orders = list(hook.paginate("commerce/query/2.0/Orders/Orders"))
    assert len(orders) == 1000
    assert norce_simulator.counters()["token_requests"] == 1


def test_an_expired_token_is_renewed_once(norce_simulator):
    hook = NorceHook(norce_simulator.conn_id)
    hook.run_json("commerce/metadata/1.1/GetApplication")
    norce_simulator.sim.expire_tokens()  # every token issued so far has expired
    hook.run_json("commerce/metadata/1.1/GetApplication")  # 401, a new token, the call again
    counters = norce_simulator.counters()
    assert counters["api_401"] == 1
    assert counters["token_requests"] == 2


# [END sim_pytest]
