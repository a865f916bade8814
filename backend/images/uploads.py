"""Checking an uploaded file is a real image of an allowed type and size, and making its thumbnail.

The check reads the bytes with Pillow (not the name or the browser's content type): a renamed text
file, a truncated PNG or a decompression bomb is refused with a message naming the problem, before
anything is written to storage. The formats are the ones every vision model accepts (the gateway's
`providers.images.MEDIA_TYPES`), so any image in the library can be sent for alt text.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "WEBP": "webp"}
MAX_PIXELS = 40_000_000  # larger is refused (Pillow's own bomb guard would only warn below 2x this)
THUMBNAIL_SIZE = (240, 240)


@dataclass(frozen=True)
class Checked:
    media_type: str
    extension: str
    width: int
    height: int
    size_bytes: int


def max_bytes() -> int:
    return int(settings.IMAGE_UPLOAD_MAX_BYTES)


def check_upload(upload: Any) -> Checked:
    """The image's real type and size, or a ValidationError saying what to fix."""
    size = int(getattr(upload, "size", 0) or 0)
    if size == 0:
        raise ValidationError("The file is empty: choose an image file.", code="empty")
    if size > max_bytes():
        raise ValidationError(
            f"The file is {size:,} bytes; images may be at most {max_bytes():,} bytes. Resize or compress it.",
            code="too_large",
        )
    raw = read_all(upload)
    try:
        with PILImage.open(io.BytesIO(raw)) as probe:
            kind, (width, height) = probe.format, probe.size
            if kind not in FORMATS:
                raise ValidationError(
                    f"{kind or 'This'} images are not accepted: upload a PNG, JPEG, GIF or WebP.", code="type"
                )
            if width * height > MAX_PIXELS:
                raise ValidationError(
                    f"The image is {width}x{height} pixels; at most {MAX_PIXELS:,} pixels.", code="too_many_pixels"
                )
            probe.verify()  # structure and checksums
        with PILImage.open(io.BytesIO(raw)) as full:
            full.load()  # every pixel: a truncated file fails here
    except ValidationError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as exc:
        raise ValidationError(
            f"The file is not a readable image ({type(exc).__name__}): upload a PNG, JPEG, GIF or WebP.",
            code="not_an_image",
        ) from None
    return Checked(FORMATS[kind], EXTENSIONS[kind], width, height, size)


def read_all(upload: Any) -> bytes:
    if hasattr(upload, "seek"):
        upload.seek(0)
    raw = upload.read()
    if hasattr(upload, "seek"):
        upload.seek(0)
    return raw


def thumbnail_of(raw: bytes) -> ContentFile:
    """A PNG of at most THUMBNAIL_SIZE, keeping the aspect ratio (the admin list shows it)."""
    with PILImage.open(io.BytesIO(raw)) as source:
        source.seek(0)
        picture = source.convert("RGBA")
        picture.thumbnail(THUMBNAIL_SIZE)
        out = io.BytesIO()
        picture.save(out, format="PNG")
    return ContentFile(out.getvalue(), name="thumbnail.png")
