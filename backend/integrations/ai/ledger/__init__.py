"""The usage ledger, gateway side: `usage` collects a call's attempts (CallRecord) and attributions,
`rows` prices a call and builds its ledger rows (where a ledger row is built), `writer` moves rows
off the caller's thread in batches (in-process queue or Redis list) to the sink;
`journal` the crash-safe ledger journal replayed at start, `dead_letter` the rows the sink refused.
Observability hooks in through `usage.CALL_LISTENERS` (the ledger imports nothing above it).

May import sites (the calling key), pricing, runtime, ports and providers. Rows are written by the Django side's sink
(`integrations.ai.ports.store()`), never by importing Django models here.
"""
