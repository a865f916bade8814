"""The provider package: one module per vendor under one interface (`base`), the plain `types` that
cross the boundary, one error hierarchy (`errors`), the `registry` every provider list comes from,
the `model_mapper` that names models for each, and the `outbound` URL policy.

A leaf: nothing here imports Django or the gateway (`integrations.ai.gateway.factory` builds providers and
hands them the gateway's hooks). See ADDING_PROVIDERS.md for the extension contract.
"""
