"""Vendor modules under one interface (`base`), one error hierarchy (`errors`), the `factory`
that picks one, and the `model_mapper` that names models for each."""
