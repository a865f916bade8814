"""Who controls a batch job (issue 28, item 2): the starter and the site's admins cancel and retry,
an editor sees and cancels the jobs they start, anyone else is refused in the admin's layout, and
another site's job stays a 404."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from integrations.jobs.admin import progress_payload
from integrations.models import BatchJob

from .factories import SiteFactory, SiteMembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

SITE_ADMIN = ["view_aiprovidersettings", "change_aiprovidersettings", "view_batchjob", "view_page", "change_page"]
EDITOR = ["view_page", "change_page"]
VIEWER = ["view_batchjob"]  # may follow jobs, does not administer the site


def member(site, codenames):
    user = UserFactory()
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def job_of(site, user, status="pending"):
    return BatchJob.objects.create(
        kind="pages.generate_meta", site=site, created_by=user, status=status, total=1, params={"keys": [1]}
    )


def cancel(client, job):
    return client.post(reverse("admin:integrations_batchjob_cancel", args=[job.pk]))


def test_the_starter_and_the_sites_admin_cancel(client):
    site = SiteFactory()
    editor, admin_user = member(site, EDITOR), member(site, SITE_ADMIN)
    client.force_login(editor)
    assert cancel(client, job_of(site, editor)).status_code == 302
    client.force_login(admin_user)
    assert cancel(client, job_of(site, editor)).status_code == 302  # someone else's, on their site
    assert BatchJob.objects.filter(status="cancelled").count() == 2


def test_others_are_refused_in_the_admin_layout_and_the_poll_never_offers_them_a_button(client):
    site = SiteFactory(name="Bakery")
    starter, viewer, colleague = member(site, EDITOR), member(site, VIEWER), member(site, EDITOR)
    job = job_of(site, starter)
    for user in (viewer, colleague):
        client.force_login(user)
        response = cancel(client, job)
        html = response.content.decode()
        assert response.status_code == 403 and 'id="refusal-needed"' in html and 'id="user-tools"' in html
        assert "to have started this batch, or to be an admin of its site" in html
    job.refresh_from_db()
    assert job.status == "pending" and not job.cancel_requested
    assert progress_payload(job, viewer)["can_cancel"] is False
    assert progress_payload(job, starter)["can_cancel"] is True
    client.force_login(colleague)  # an editor does not see a colleague's job either
    assert client.get(reverse("admin:integrations_batchjob_change", args=[job.pk])).status_code == 403
    assert f"#{job.pk}" not in client.get(reverse("admin:integrations_batchjob_changelist")).content.decode()


def test_another_sites_job_is_a_404_even_for_a_site_admin(client):
    mine, theirs = SiteFactory(), SiteFactory()
    admin_user = member(mine, SITE_ADMIN)
    job = job_of(theirs, member(theirs, EDITOR))
    client.force_login(admin_user)
    assert cancel(client, job).status_code == 404
    assert client.post(reverse("admin:integrations_batchjob_retry", args=[job.pk])).status_code == 404
    assert client.get(reverse("admin:integrations_batchjob_progress", args=[job.pk])).status_code == 404
    assert BatchJob.objects.get(pk=job.pk).status == "pending"


def test_retry_needs_the_permissions_of_the_work(client):
    site = SiteFactory()
    starter = member(site, ["view_page"])  # may no longer change pages
    job = job_of(site, starter, status="cancelled")
    client.force_login(starter)
    response = client.post(reverse("admin:integrations_batchjob_retry", args=[job.pk]))
    assert response.status_code == 403 and "pages.change_page" in response.content.decode()
    assert not BatchJob.objects.filter(retry_of=job).exists()
