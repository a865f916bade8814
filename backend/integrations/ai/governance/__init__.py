"""Per-site governance: whether a call may go out. `admission` runs the checks in order (policy,
rate limits, budget windows, the monthly cap) and settles reservations afterwards; `budget` is the
monthly cap (where the budget is checked), `budget_windows` the daily/weekly/per-service windows and
their alerts, `ratelimit` the per-site request and token limits, `money` the micro-dollar
arithmetic they share (the calling virtual key is `sites.callers`).

May import the ledger (prices, call records), sites, runtime, ports and providers; never the
gateway above it, nor Django models (sums, budget periods and alerts go through `integrations.ai.ports`).
"""
