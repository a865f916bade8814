"""Database backends of the project (Django's, with changes that say why in their docstrings)."""
