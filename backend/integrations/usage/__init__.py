"""The ledger's Django side: how rows are inserted (`insert`), their daily roll-ups (`rollups`),
retention (`retention`), the usage dashboard's numbers (`dashboard`, where the admin's dashboard
queries) and its view/CSV (`dashboard_view`), the ledger admins (`admin`)
and the per-virtual-key daily usage (`keys`).

May import `integrations.models`, the gateway (`integrations.ai`) and `tenancy`; the gateway never
imports this package (it hands rows to `integrations.store`).
"""
