"""Every Connect import method end to end against the simulator: the header the operator builds (derived
masks, FullFile only where the header has it) and a contract-valid item are accepted and the job succeeds.

The simulator follows Norce's contracts in its own code, so this is where the two sides check each other.
"""

from __future__ import annotations

import pytest
from norce_connect_support import onhand, use_simulator

from airflow_provider_norce.operators.connect import NorceConnectImportOperator

pytestmark = pytest.mark.norce_simulator(job_duration=0.05)

KEY = "0e8a2f54-2b43-4b7a-9b6e-2c6a8b1f9d10"
ITEMS = {
    "Product/ImportOnhands": onhand("100001", 3),
    "Product/ImportSkuPriceLists": {"PartNo": "100001", "PriceListCode": "DEFAULT", "PriceSale": 10.0},
    "Product/ImportPriceLists": {"Code": "PL-T", "Name": "Test list", "CurrencyCode": "SEK"},
    "Product/ImportProducts": {
        "ManufacturerCode": "SIM",
        "Variants": [{"ManufacturerPartNo": "MPN-X1", "Skus": [{"PartNo": "X-1", "Status": 1, "Type": 1}]}],
    },
    "Product/ImportRelations": {"PartNo": "100001", "RelatedPartNo": "100002", "RelationTypeCode": "ACC"},
    "Product/ImportCompetitorSkus": {
        "PartNo": "100001",
        "Source": "feed",
        "CompetitorCode": "C1",
        "CompetitorPartNo": "c-1",
        "PriceSale": 9.0,
        "PriceSaleInclFreight": 10.0,
        "IsPricesInclVat": True,
        "IsInStock": True,
    },
    "Customer/ImportCustomers": {"Code": "CU-1", "EmailAddress": "a@example.com", "FirstName": "A"},
    "Customer/ImportCompanies": {"ApplicationKey": KEY, "Code": "CO-1", "Name": "Acme"},
    "Supplier/ImportProducts": {
        "SupplierPartNo": "S-1",
        "ProductName": "Widget",
        "OnHand": [{"WarehouseCode": "MAIN", "LocationCode": "MAIN", "Value": 3}],
        "PriceList": [{"PriceListCode": "DEFAULT", "CostPurchase": 1.5}],
    },
}


@pytest.mark.parametrize("method", sorted(ITEMS))
def test_each_method_is_accepted_and_succeeds(norce_simulator, monkeypatch, method):
    use_simulator(monkeypatch, norce_simulator.sim)
    job_ids = NorceConnectImportOperator(
        task_id="imp",
        import_method=method,
        items=[ITEMS[method]],
        connect_header={"AccountId": 1},
        poll_interval=0.02,
        deferrable=False,
    ).execute({})
    assert len(job_ids) == 1
    assert norce_simulator.sim.connect.job_status(int(job_ids[0]))["StatusId"] == 2
