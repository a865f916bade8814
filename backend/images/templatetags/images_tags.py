"""Template tags for showing library images in block previews with their real alt text."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.simple_tag
def library_alt(image_id: Any, site_id: Any) -> str:
    """The alt text of image `image_id` of site `site_id` ("" when it has none, or is not that site's image)."""
    from images.models import Image

    if not str(image_id or "").isdigit() or not str(site_id or "").isdigit():
        return ""
    return Image.objects.filter(pk=int(image_id), site_id=int(site_id)).values_list("alt_text", flat=True).first() or ""
