"""The `/v1` endpoints: OpenAI's and Anthropic's wire formats onto the one gateway, per site, with virtual keys.

`openai_dialect` (Chat Completions), `responses_dialect` (OpenAI's Responses) and `anthropic_dialect`
translate requests into a `GatewayCall` and gateway results back into each vendor's JSON and SSE
shapes (pure functions, no Django); `failures` maps
the gateway's one exception hierarchy to each dialect's status codes and error bodies; `keys`
resolves a virtual key to its site and limits without a query once warm; `views` serves them.
Every call runs through `AIService` (mappings, routing, policy, budget, rate limits, failover,
ledger) with the key as one more governance scope (`integrations.ai.sites.callers`).
"""
