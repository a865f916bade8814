"""Issue 23 (images): the per-site image library, AI alt text through the real SDKs and the emulator,
review and provenance, the batch job, tenancy of every screen, images in blocks, and the demo data."""

from __future__ import annotations

import base64
import io
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from images import alt_text
from images.models import AltTextProvenance, Image
from images.tasks import estimate_images, start_alt_text
from images.uploads import thumbnail_of
from integrations.ai.ledger import usage
from integrations.jobs import runner as jobs
from integrations.models import AIUsage, BatchJob
from pages.block_forms import BlockContentForm
from pages.blocks import describe, json_schema
from pages.models import Block

from .beyond_text import png
from .factories import SiteFactory, SiteMembershipFactory, SuperUserFactory, UserFactory
from .factories_cms import BlockFactory, PageFactory

pytestmark = pytest.mark.django_db

SITE_ADMIN_PERMS = ["view_image", "add_image", "change_image", "delete_image"]


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def make_image(site, title="Croissants", alt="", width=64, height=48) -> Image:
    raw = png(width, height)
    image = Image(
        site=site, title=title, alt_text=alt, media_type="image/png", width=width, height=height, size_bytes=len(raw)
    )
    image.file.save("x.png", ContentFile(raw), save=False)
    image.thumbnail.save("t.png", thumbnail_of(raw), save=False)
    image.save()
    return image


def site_admin(site, username="img-admin"):
    user = UserFactory(username=username)
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="images", codename__in=SITE_ADMIN_PERMS)
    )
    return user


def stored_files(root) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# -- upload -----------------------------------------------------------------------------------------------------
def test_upload_stores_the_file_and_a_thumbnail_through_storage(client, emulated_site, media):
    site = emulated_site("openai")
    client.force_login(site_admin(site))
    upload = SimpleUploadedFile("photo.png", png(600, 300), content_type="image/png")
    response = client.post(
        reverse("admin:images_image_add"), {"site": site.pk, "title": "Shop front", "file": upload, "alt_text": ""}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    image = Image.objects.get()
    assert (image.site, image.width, image.height, image.media_type) == (site, 600, 300, "image/png")
    assert image.file.name.startswith(f"images/site-{site.pk}/") and default_storage.exists(image.file.name)
    assert default_storage.exists(image.thumbnail.name)
    with default_storage.open(image.thumbnail.name) as handle:
        from PIL import Image as PILImage

        assert PILImage.open(handle).size == (240, 120)
    served = client.get(reverse("admin:images_image_thumbnail", args=[image.pk]))
    assert served.status_code == 200 and served["Content-Type"] == "image/png"


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.png", b"this is not an image at all", "not a readable image"),
        ("cut.png", png(64, 48)[:60], "not a readable image"),
        ("anim.bmp", None, "BMP images are not accepted"),
        ("half.jpg", "half-jpeg", "not a readable image"),  # passes Pillow's verify(); only decoding finds it
        ("empty.png", b"", "The submitted file is empty"),  # Django's own check, before ours
    ],
)
def test_a_bad_upload_is_a_clear_error_and_nothing_is_stored(client, emulated_site, media, name, data, message):
    site = emulated_site("openai")
    client.force_login(site_admin(site))
    from PIL import Image as PILImage

    if data is None:
        buffer = io.BytesIO()
        PILImage.new("RGB", (8, 8)).save(buffer, format="BMP")
        data = buffer.getvalue()
    elif data == "half-jpeg":
        buffer = io.BytesIO()
        PILImage.effect_noise((200, 200), 60).convert("RGB").save(buffer, format="JPEG")
        data = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    response = client.post(
        reverse("admin:images_image_add"),
        {"site": site.pk, "title": "Bad", "file": SimpleUploadedFile(name, data, content_type="image/png")},
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Image.objects.count() == 0 and stored_files(media) == []


def test_an_upload_over_the_size_limit_is_refused(client, emulated_site, media, settings):
    settings.IMAGE_UPLOAD_MAX_BYTES = 200
    site = emulated_site("openai")
    client.force_login(site_admin(site))
    response = client.post(
        reverse("admin:images_image_add"),
        {"site": site.pk, "title": "Big", "file": SimpleUploadedFile("big.png", png(300, 300))},
    )
    assert "images may be at most 200 bytes" in response.content.decode()
    assert Image.objects.count() == 0 and stored_files(media) == []


# -- tenancy ----------------------------------------------------------------------------------------------------
def test_a_site_admin_sees_and_uploads_only_into_their_own_site(client, emulated_site, media):
    mine, other = emulated_site("openai"), SiteFactory(name="Other shop")
    own = make_image(mine, "Mine")
    theirs = make_image(other, "Theirs")
    client.force_login(site_admin(mine))
    listing = client.get(reverse("admin:images_image_changelist")).content.decode()
    assert "Mine" in listing and "Theirs" not in listing
    todo = client.get(reverse("admin:images_image_changelist") + "?alt=missing").content.decode()
    assert "Mine" in todo and "Theirs" not in todo and "Other shop" not in todo  # the site filter too
    for name in ("images_image_change", "images_image_file", "images_image_thumbnail"):
        assert client.get(reverse(f"admin:{name}", args=[theirs.pk])).status_code in (302, 404)
    assert client.post(reverse("admin:images_image_generate_alt", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("admin:images_image_file", args=[own.pk])).status_code == 200
    refused = client.post(
        reverse("admin:images_image_add"),
        {"site": other.pk, "title": "Sneaky", "file": SimpleUploadedFile("s.png", png())},
    )
    assert refused.status_code == 200 and not Image.objects.filter(title="Sneaky").exists()
    no_site = client.post(
        reverse("admin:images_image_add"), {"title": "Global", "file": SimpleUploadedFile("g.png", png())}
    )
    assert no_site.status_code == 200 and not Image.objects.filter(title="Global").exists()
    review = client.get(reverse("admin:images_image_review_alt") + f"?ids={theirs.pk},{own.pk}").content.decode()
    assert "Mine" in review and "Theirs" not in review


# -- alt text through the site's gateway ------------------------------------------------------------------------
def test_alt_text_sends_the_image_and_the_page_context_and_waits_for_review(emulated_site, upstream):
    site = emulated_site("openai")
    image = make_image(site, "Cinnamon buns")
    page = PageFactory(site=site, title="Spring sale", body="Twenty percent off our famous cinnamon buns. Ends Sunday.")
    BlockFactory(page=page, type="hero", content={"heading": "Spring sale", "image": str(image.pk)})
    text, origin = alt_text.propose(image)
    body = upstream.requests_for("openai")[-1].json
    parts = body["messages"][-1]["content"]
    data = base64.b64encode(image.file.open("rb").read()).decode()
    assert {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}", "detail": "auto"}} in parts
    prompt = next(p["text"] for p in parts if p["type"] == "text")
    assert "Page title: Spring sale" in prompt and "cinnamon buns" in prompt
    assert body["response_format"]["json_schema"]["schema"]["properties"]["alt_text"]["maxLength"] == 250
    assert text.startswith("Cinnamon buns: Twenty percent off")
    image.refresh_from_db()
    assert image.alt_text == "" and image.alt_proposal == text and not image.alt_text_ai  # nothing saved yet
    usage.flush()  # the ledger is written off the caller's thread
    row = AIUsage.objects.get(site=site, service="images.alt_text")
    assert (row.content_type, row.object_id) == (ContentType.objects.get_for_model(Image), image.pk)
    assert row.cost is not None and row.cost > 0 and Decimal(origin.cost) == row.cost


def test_accepting_records_provenance_and_a_hand_edit_clears_the_marker(client, emulated_site, upstream):
    site = emulated_site("openai")
    image = make_image(site, "Sourdough")
    user = site_admin(site)
    client.force_login(user)
    response = client.post(reverse("admin:images_image_generate_alt", args=[image.pk]))
    assert response.status_code == 302 and "alt/review/" in response["Location"]
    review = client.get(response["Location"]).content.decode()
    image.refresh_from_db()
    assert image.alt_proposal in review
    saved = client.post(
        reverse("admin:images_image_review_alt"),
        {"ids": str(image.pk), f"accept-{image.pk}": "on", f"alt-{image.pk}": "A round sourdough loaf."},
        follow=True,
    )
    assert "Saved alt text for 1 image(s)" in saved.content.decode()
    image.refresh_from_db()
    assert (image.alt_text, image.alt_text_ai, image.alt_proposal) == ("A round sourdough loaf.", True, "")
    row = AltTextProvenance.objects.get(image=image)
    assert row.model == "gpt-4o-mini" and row.prompt_version == alt_text.ALT_PROMPT.version
    assert row.cost is not None and row.cost > 0 and row.edited_at_review and row.accepted_by == user
    usage.flush()  # the page counts the calls in the ledger, written off the caller's thread
    page = client.get(reverse("admin:images_image_change", args=[image.pk])).content.decode()
    assert "AI-generated" in page and alt_text.ALT_PROMPT.version in page and "over 1 call(s)" in page

    change = client.post(
        reverse("admin:images_image_change", args=[image.pk]),
        {"site": site.pk, "title": "Sourdough", "alt_text": "Our sourdough, fresh from the oven."},
    )
    assert change.status_code == 302
    image.refresh_from_db()
    row.refresh_from_db()
    assert not image.alt_text_ai and row.edited_at is not None and not row.ai_generated
    assert image.file.name  # the change form without a new file keeps the stored one


def test_accept_without_a_proposal_or_with_empty_text_is_refused(emulated_site, upstream):
    image = make_image(emulated_site("openai"))
    with pytest.raises(LookupError, match="no alt text proposal"):
        alt_text.accept(image, "Anything")
    alt_text.propose(image)
    with pytest.raises(ValueError, match="empty"):
        alt_text.accept(image, "   ")
    assert AltTextProvenance.objects.count() == 0


def test_alt_text_on_anthropic_uses_the_forced_tool_and_an_image_block(emulated_site, upstream):
    site = emulated_site("anthropic")
    image = make_image(site, "Shop window")
    text, origin = alt_text.propose(image, model="claude-3-5-sonnet")
    body = upstream.requests_for("anthropic")[-1].json
    block = next(b for b in body["messages"][-1]["content"] if b["type"] == "image")
    assert block["source"]["media_type"] == "image/png"
    assert text.startswith("Shop window") and origin.provider == "anthropic"


def test_a_text_only_model_is_refused_before_any_request(emulated_site, upstream):
    image = make_image(emulated_site("anthropic"))
    with pytest.raises(Exception) as caught:
        alt_text.propose(image, model="claude-3-5-haiku")
    assert getattr(caught.value, "code", "") == "not_supported"
    assert upstream.requests_for("anthropic") == []
    image.refresh_from_db()
    assert image.alt_proposal == ""


# -- batch ------------------------------------------------------------------------------------------------------
def test_batch_estimate_counts_each_image_and_the_action_shows_it(client, emulated_site, upstream):
    site = emulated_site("openai")
    images = [make_image(site, f"Picture {n}", width=320, height=220) for n in range(3)]
    estimate = estimate_images(site, images, None)
    assert not estimate.blocked and estimate.items == 3
    assert estimate.prompt_tokens > 3 * (2833 + 5667)  # gpt-4o-mini: base + one tile per image, plus the text
    assert estimate.cost is not None and estimate.cost > 0
    client.force_login(SuperUserFactory())
    screen = client.post(
        reverse("admin:images_image_changelist"),
        {"action": "generate_alt_text_batch", "_selected_action": [i.pk for i in images]},
    ).content.decode()
    assert "Estimate" in screen and "Start batch" in screen and "3 images" in screen
    assert upstream.requests_for("openai") == []  # an estimate sends nothing


def test_batch_job_stores_proposals_for_review_and_a_cancelled_job_sends_nothing(emulated_site, upstream):
    site = emulated_site("openai")
    images = [make_image(site, f"Picture {n}") for n in range(3)]
    job = start_alt_text(site, image_ids=[i.pk for i in images])
    job.refresh_from_db()
    assert (job.status, job.total, job.succeeded, job.failed) == ("done", 3, 3, 0)
    assert all(Image.objects.get(pk=i.pk).alt_proposal.startswith(f"Picture {n}") for n, i in enumerate(images))
    assert not Image.objects.exclude(alt_text="").exists()  # proposals only: a person accepts them
    assert AIUsage.objects.filter(service="images.alt_text", object_id__in=[i.pk for i in images]).count() == 3

    upstream.reset()
    pending = BatchJob.objects.create(kind="images.alt_text", site=site, params={"image_ids": [images[0].pk]})
    assert jobs.cancel(pending)
    jobs.run_job(pending.pk)
    pending.refresh_from_db()
    assert pending.status == "cancelled" and upstream.requests_for("openai") == []


def test_batch_job_reports_a_failing_image_and_goes_on(emulated_site, upstream, settings):
    settings.AI_MAX_RETRIES = 0
    site = emulated_site("openai")
    images = [make_image(site, f"Picture {n}") for n in range(2)]
    upstream.script(flavor="openai", status=500, times=1)
    job = start_alt_text(site, image_ids=[i.pk for i in images])
    job.refresh_from_db()
    assert (job.succeeded, job.failed) == (1, 1) and jobs.can_retry(job)


# -- blocks -----------------------------------------------------------------------------------------------------
def test_blocks_take_only_images_of_their_own_site(emulated_site):
    site, other = emulated_site("openai"), SiteFactory()
    mine, theirs = make_image(site, "Mine"), make_image(other, "Theirs")
    page = PageFactory(site=site)
    ok = Block(page=page, type="hero", content={"heading": "Hi", "image": str(mine.pk)})
    ok.full_clean()
    bad = Block(
        page=page, type="features", content={"items": [{"title": "T", "description": "D", "image": str(theirs.pk)}]}
    )
    with pytest.raises(ValidationError, match="not in this site's image library"):
        bad.full_clean()
    with pytest.raises(ValidationError, match="id of an image"):
        Block(page=page, type="hero", content={"heading": "Hi", "image": "javascript:1"}).full_clean()
    form = BlockContentForm(block_type="hero", site_id=site.pk)
    assert [label for _, label in form.fields["image"].choices][1:] == ["Mine — no alt text yet"]
    assert "image" not in describe("hero") and "image" not in json_schema("hero")["properties"]
    assert alt_text.pages_using(mine) == [] and BlockFactory(page=page, type="hero", content=ok.content)
    assert alt_text.pages_using(mine) == [page]


# -- demo -------------------------------------------------------------------------------------------------------
def test_demo_extras_add_images_and_a_month_of_history_once(upstream):
    call_command("load_demo", "--upstream-url", upstream.url, stdout=StringIO())
    call_command("load_demo_extras", stdout=StringIO())
    counts = (Image.objects.count(), AIUsage.objects.count())
    call_command("load_demo_extras", stdout=StringIO())
    assert (Image.objects.count(), AIUsage.objects.count()) == counts and counts[0] == 5 and counts[1] == 900
    hero = Block.objects.get(page__slug="spring-sale", type="hero")
    buns = Image.objects.get(title="Cinnamon buns on a tray")
    assert hero.content["image"] == str(buns.pk)
    assert Image.objects.filter(alt_text="").count() == 4  # the accessibility to-do has work to show
    text, origin = alt_text.propose(buns)  # the Bakery (OpenRouter) through the emulator
    assert text.startswith("Cinnamon buns on a tray: Everything in the bakery is twenty percent off")
    assert origin.provider == "openrouter" and Decimal(origin.cost) > 0


def test_a_job_cancelled_mid_run_stops_before_the_next_image(emulated_site, upstream):
    """The handler checks for a cancel between images: cancelled after the first, the rest are never sent."""
    site = emulated_site("openai")
    images = [make_image(site, f"Picture {n}") for n in range(3)]
    job = BatchJob.objects.create(kind="images.alt_text", site=site, params={"image_ids": [i.pk for i in images]})
    reported = []

    def report(item, ok, code="", message="", key=None):
        reported.append((key, ok))
        jobs.cancel(job)  # someone presses "Cancel" while the first image is being reported

    with pytest.raises(jobs.JobCancelled):
        jobs.handler_for("images.alt_text")(job, report)
    assert reported == [(images[0].pk, True)] and len(upstream.requests_for("openai")) == 1
    assert [bool(Image.objects.get(pk=i.pk).alt_proposal) for i in images] == [True, False, False]


def test_the_page_form_shows_a_blocks_image_with_its_alt_text_and_the_block_form_offers_it(client, emulated_site):
    site, other = emulated_site("openai"), SiteFactory()
    loaf = make_image(site, "Loaf", alt="A round sourdough loaf.")
    make_image(other, "Not ours", alt="Another site's picture.")
    page = PageFactory(site=site)
    block = BlockFactory(page=page, type="hero", content={"heading": "Fresh", "image": str(loaf.pk)})
    client.force_login(SuperUserFactory())
    html = client.get(reverse("admin:pages_page_change", args=[page.pk])).content.decode()
    thumb = reverse("admin:images_image_thumbnail", args=[loaf.pk])
    assert f'src="{thumb}" alt="A round sourdough loaf."' in html
    form = client.get(reverse("admin:pages_page_edit_block", args=[page.pk, block.pk])).content.decode()
    assert "Loaf — A round sourdough loaf." in form and "Not ours" not in form
