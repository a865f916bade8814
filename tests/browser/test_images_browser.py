"""Upload an image, generate alt text with AI, review, accept, see its provenance, in Chromium (issue 23).

As a site admin and as an editor of one site; the other site's image is never listed. Each screen is
written to var/screenshots/.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from images.models import AltTextProvenance, Image
from tests.beyond_text import png
from tests.factories import SiteFactory, SiteMembershipFactory, UserFactory
from tests.factories_cms import BlockFactory, PageFactory
from tests.test_image_library import make_image

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROLE_PERMS = {
    "site_admin": ["view_image", "add_image", "change_image", "delete_image"],
    "editor": ["view_image", "add_image", "change_image"],
}


@pytest.mark.parametrize("role", ["site_admin", "editor"])
def test_upload_generate_review_accept_provenance(
    page, live_server, admin_login, emulated_site, screenshot, role, tmp_path, settings
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    site = emulated_site("openrouter", site=SiteFactory(domain="localhost", name="Bakery (OpenRouter)"))
    make_image(SiteFactory(name="Other shop"), "Other site's photo")
    sale = PageFactory(site=site, title="Spring sale", body="Twenty percent off our cinnamon buns until Sunday.")
    user = UserFactory(username=f"browser-{role}")
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="images", codename__in=ROLE_PERMS[role])
    )
    admin_login(user.username)

    bad, good = tmp_path / "notes.png", tmp_path / "buns.png"
    bad.write_bytes(b"not an image")
    good.write_bytes(png(400, 300))
    page.goto(f"{live_server.url}/admin/images/image/add/")
    page.fill("#id_title", "Cinnamon buns")
    page.set_input_files("#id_file", str(bad))
    page.click("input[name=_continue]")
    page.wait_for_selector(".errornote")
    screenshot("1-bad-upload")
    assert "not a readable image" in page.inner_text(".field-file")
    assert not Image.objects.filter(site=site).exists()

    page.set_input_files("#id_file", str(good))
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    image = Image.objects.get(site=site)
    BlockFactory(page=sale, type="hero", content={"heading": "Spring sale", "image": str(image.pk)})
    assert page.locator(".field-preview img").count() == 1
    screenshot("2-uploaded")

    page.goto(f"{live_server.url}/admin/images/image/?alt=missing")
    page.wait_for_selector("#result_list")
    listing = page.inner_text("#result_list")
    assert "Cinnamon buns" in listing and "no alt text (to do)" in listing and "Other site" not in listing
    assert page.evaluate("document.querySelector('#result_list img.image-thumb').naturalWidth") > 0
    screenshot("3-todo-list")

    page.goto(f"{live_server.url}/admin/images/image/{image.pk}/change/")
    page.click("button.generate-alt-link")
    page.wait_for_selector("#review-alt-form")
    screenshot("4-review")
    proposal = page.locator(f"textarea[name=alt-{image.pk}]")
    assert proposal.input_value().startswith("Cinnamon buns: Twenty percent off our cinnamon buns")
    assert Image.objects.get(pk=image.pk).alt_text == ""  # nothing saved before accepting
    proposal.fill("A tray of cinnamon buns, twenty percent off until Sunday.")
    page.click("input[name=_accept]")
    page.wait_for_selector(".messagelist .success")
    screenshot("5-accepted")
    assert "Saved alt text for 1 image(s): Cinnamon buns." in page.inner_text(".messagelist")
    provenance = page.inner_text(".alt-provenance")
    assert "AI-generated (edited at review)" in provenance and "images.alt_text" in provenance
    assert "Spring sale" in provenance and "$" in provenance
    assert "over 1 call(s)" in page.inner_text(".field-ai_spend")
    row = AltTextProvenance.objects.get(image=image)
    assert row.accepted_by == user and row.context_page == sale and row.cost is not None

    page.fill("#id_alt_text", "Cinnamon buns on a baking tray.")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    screenshot("6-edited-by-hand")
    assert "Written by a person." in page.inner_text(".field-alt_marker")
    assert "Edited by a person" in page.inner_text(".alt-provenance")
