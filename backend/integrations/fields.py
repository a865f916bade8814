"""An encrypted field for API keys that never serialises its plaintext.

django-encrypted-model-fields encrypts at rest, but `dumpdata` and other serialisers call
`value_to_string`, which would print the decrypted key. This field serialises the ciphertext
instead (loading it back decrypts it, so fixtures round-trip) and keeps keys out of reprs.
"""

from __future__ import annotations

from typing import Any

from encrypted_model_fields.fields import EncryptedCharField, encrypt_str


class SecretKeyField(EncryptedCharField):
    def value_to_string(self, obj: Any) -> str:
        value = self.value_from_object(obj)
        return encrypt_str(value).decode() if value else ""


def mask_secret(value: str | None) -> str:
    """What a person may see of a key: that it is set and its last four characters."""
    if not value:
        return ""
    return f"••••{value[-4:]}" if len(value) >= 12 else "••••"
