"""`manage.py load_demo_extras`: the demo's image library and a month of emulated usage history.

Run by `bin/dev` after `load_demo`. Each demo site gets a few small pictures drawn with Pillow (no
binary files in the repository), one of them shown in the Bakery's "Spring sale" hero block, most
without alt text so the accessibility to-do and "Generate alt text with AI" have work to show. The
usage history is `seed_usage` over the last 30 days for the demo sites, so the dashboard does not
open on an empty month. Both are idempotent: images are matched by title, and the history is
seeded only while the demo sites have no ledger rows older than a day.
"""

from __future__ import annotations

import datetime
import io
from typing import Any

from django.contrib.sites.models import Site
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone
from PIL import Image as PILImage
from PIL import ImageDraw

from images.models import Image
from images.uploads import thumbnail_of
from integrations.models import AIUsage
from pages.models import Block

DEMO_DOMAINS = ("127.0.0.1", "localhost")  # the sites of fixtures/demo.json
# site domain -> (title, alt text or "", background, shapes [(kind, box, colour)])
DEMO_IMAGES: dict[str, list[tuple[str, str, str, list[tuple[str, tuple[int, int, int, int], str]]]]] = {
    "127.0.0.1": [
        (
            "Cinnamon buns on a tray",
            "",
            "#f3e3c3",
            [
                ("rect", (20, 90, 300, 200), "#9a9a9a"),
                ("ellipse", (40, 60, 120, 130), "#b86b2b"),
                ("ellipse", (130, 60, 210, 130), "#c27a36"),
                ("ellipse", (220, 60, 300, 130), "#b86b2b"),
            ],
        ),
        (
            "Sourdough loaf",
            "A round sourdough loaf with a floured, scored crust on a wooden board.",
            "#e9dcc5",
            [("rect", (30, 150, 290, 190), "#8b5a2b"), ("ellipse", (70, 50, 250, 165), "#a0652d")],
        ),
        (
            "Three-tier wedding cake",
            "",
            "#fbeff4",
            [
                ("rect", (90, 130, 230, 190), "#ffffff"),
                ("rect", (110, 80, 210, 130), "#fff8f0"),
                ("rect", (130, 40, 190, 80), "#ffffff"),
                ("ellipse", (150, 25, 170, 45), "#e58fb0"),
            ],
        ),
    ],
    "localhost": [
        (
            "Shop window in autumn",
            "",
            "#f0e0c0",
            [
                ("rect", (20, 30, 300, 190), "#5b3a29"),
                ("rect", (40, 50, 280, 170), "#cfe3ef"),
                ("rect", (60, 120, 90, 170), "#c0392b"),
                ("rect", (95, 110, 120, 170), "#2c7a3f"),
                ("ellipse", (200, 60, 240, 100), "#e67e22"),
            ],
        ),
        (
            "Reading group table",
            "",
            "#ece4d8",
            [
                ("ellipse", (60, 70, 260, 180), "#8e6e53"),
                ("rect", (100, 100, 150, 130), "#2e86c1"),
                ("ellipse", (180, 95, 215, 130), "#ffffff"),
            ],
        ),
    ],
}
HERO = {"127.0.0.1": ("spring-sale", "Cinnamon buns on a tray")}  # the hero block that shows a demo image
HISTORY_ROWS, HISTORY_DAYS = 900, 30


def draw(background: str, shapes: list[tuple[str, tuple[int, int, int, int], str]]) -> bytes:
    picture = PILImage.new("RGB", (320, 220), background)
    pen = ImageDraw.Draw(picture)
    for kind, box, colour in shapes:
        (pen.ellipse if kind == "ellipse" else pen.rectangle)(box, fill=colour)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


class Command(BaseCommand):
    help = "Add the demo image library and a month of emulated usage history to the demo sites (idempotent)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-history", action="store_true", help="Skip the usage history.")

    def handle(self, *args: Any, **options: Any) -> None:
        sites = {site.domain: site for site in Site.objects.filter(domain__in=DEMO_DOMAINS)}
        made = 0
        for domain, specs in DEMO_IMAGES.items():
            site = sites.get(domain)
            if site is None:
                continue
            for title, alt, background, shapes in specs:
                if Image.objects.filter(site=site, title=title).exists():
                    continue
                raw = draw(background, shapes)
                image = Image(
                    site=site,
                    title=title,
                    alt_text=alt,
                    media_type="image/png",
                    width=320,
                    height=220,
                    size_bytes=len(raw),
                )
                image.file.save("demo.png", ContentFile(raw), save=False)
                image.thumbnail.save("thumbnail.png", thumbnail_of(raw), save=False)
                image.save()
                made += 1
        for domain, (slug, title) in HERO.items():
            image = Image.objects.filter(site__domain=domain, title=title).first()
            block = Block.objects.filter(page__site__domain=domain, page__slug=slug, type="hero").first()
            if image is not None and block is not None and not block.content.get("image"):
                block.content = {**block.content, "image": str(image.pk)}
                block.save(update_fields=["content", "updated_at"])
        self.stdout.write(
            f"demo images: {made} added ({Image.objects.filter(site__in=sites.values()).count()} in the demo libraries)"
        )
        if options["no_history"] or not sites:
            return
        old = timezone.now() - datetime.timedelta(days=1)
        if AIUsage.objects.filter(site__in=sites.values(), created_at__lt=old).exists():
            self.stdout.write("demo usage history: already there")
            return
        call_command(
            "seed_usage",
            "--rows",
            str(HISTORY_ROWS),
            "--days",
            str(HISTORY_DAYS),
            *[arg for domain in sites for arg in ("--site", domain)],
            stdout=self.stdout,
        )
