"""API tokens (`Authorization: Token <token>`) resolved with no query for a warm token.

Why: the token query (the token, its user's flags, the site membership and the `integrations.use_ai`
permission, in one statement) ran on every call of `POST /api/ai/generate/`; on PostgreSQL planning
it cost more server CPU than anything else the call did. Each process now remembers what a token hash
answered for a site (a `Grant`, or "no such token") with the token version it read it under, the way
the /v1 virtual keys (`integrations.api.v1.keys`) and the site snapshots (`site_config`) are kept:

- The version is a counter in the shared cache that every change the answer depends on bumps: a token
  saved or deleted (edited, revoked), a user saved or deleted (deactivated, staff or superuser status;
  not a login), a site membership, a user's or group's permissions or groups. This process forgets its
  tokens at once; every other one reads the counter every `AI_SETTINGS_CHECK_INTERVAL` seconds (0: on
  every call) and re-reads a token whose version moved.
- A change that sends no signal (a bulk `update()`, raw SQL, another application) is picked up within
  `MAX_AGE` seconds: a remembered answer is re-read after that however the version stands.
- Expiry is checked against the clock on every request, revocation (`revoked_at`) with the answer.
- While the database (or the shared cache) is unreachable, a token this process resolved keeps its last
  known answer (warm tokens go on serving; expiry is still checked); a token it never saw raises the error.
- The token's last use is written at most once a `LAST_USED_RESOLUTION` per process, and only when the row
  does not already say it was used within it (another process wrote it): never a write per request.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from django.db import DatabaseError, connection
from django.db.models import Q
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils import timezone

from integrations.ai.runtime.conf import settings_check_interval
from integrations.ai.runtime.shared_cache import cache

VERSION_KEY = "integrations.api:tokens:version"
MAX_REMEMBERED = 10_000  # (hash, site) answers kept per process; a flood of random tokens cannot grow it unbounded
MAX_AGE = 60.0  # seconds an answer is trusted at most, version or not (changes made without a signal)
LAST_USED_RESOLUTION = datetime.timedelta(minutes=1)
USE_AI = ("integrations", "use_ai")


@dataclass(frozen=True)
class Grant:
    """What the token query answered for one token and site."""

    token_id: int
    user_id: int
    active: bool  # the user is active
    is_staff: bool
    is_superuser: bool
    is_member: bool  # of the site asked about
    may_use_ai: bool  # holds integrations.use_ai, directly or through a group
    token_site: int | None  # the one site the token is bound to; None: every site its user manages
    scopes: tuple[str, ...]
    expires_at: datetime.datetime | None
    revoked: bool

    def expired(self, now: datetime.datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class _Entry:
    grant: Grant | None  # None: no such token
    version: int
    checked_at: float  # monotonic: when the version was last compared
    loaded_at: float  # monotonic: when the database was last read
    used_at: datetime.datetime | None  # the last use known to be written


_entries: dict[tuple[str, int], _Entry] = {}
_lock = threading.Lock()
_SQL: dict[str, str] = {}  # per database vendor, built once from the models' tables and columns


def _sql() -> str:
    """One query for all a token request needs: the token and its scope, its user's flags, the site
    membership, and whether the user holds `integrations.use_ai` (directly or through a group).

    Raw SQL because it was the one query of a warm call and the ORM spent ~0.5 ms of CPU compiling the two
    it replaced; now it runs when a token is first seen or changed. Names come from the models' metadata,
    parameters are bound, and the SQL is plain enough for SQLite and PostgreSQL.
    """
    sql = _SQL.get(connection.vendor)
    if sql is None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group, Permission
        from django.contrib.contenttypes.models import ContentType

        from integrations.models import APIToken
        from tenancy.models import SiteMembership

        q = connection.ops.quote_name
        User = get_user_model()
        token, user, member = APIToken._meta, User._meta, SiteMembership._meta
        user_perms = User.user_permissions.through._meta
        user_groups = User.groups.through._meta
        group_perms = Group.permissions.through._meta
        permission, content_type = Permission._meta, ContentType._meta

        def col(meta: Any, field: str) -> str:
            return f"{q(meta.db_table)}.{q(meta.get_field(field).column)}"

        # the use_ai permission by app label and codename (bound), not a cached id: ids change when
        # permissions are recreated (a flushed test database, a restored dump)
        use_ai = (
            f"SELECT {col(permission, 'id')} FROM {q(permission.db_table)} "  # noqa: S608
            f"INNER JOIN {q(content_type.db_table)} ON {col(permission, 'content_type')} = "
            f"{col(content_type, 'id')} WHERE {col(content_type, 'app_label')} = %s "
            f"AND {col(permission, 'codename')} = %s"
        )

        def holds(through: Any, owner: str, owner_value: str) -> str:
            return (
                f"SELECT 1 FROM {q(through.db_table)} WHERE {col(through, owner)} = {owner_value} "  # noqa: S608
                f"AND {col(through, 'permission')} IN ({use_ai})"
            )

        group_ids = (
            f"SELECT {col(user_groups, 'group')} FROM {q(user_groups.db_table)} "  # noqa: S608
            f"WHERE {col(user_groups, 'user')} = {col(user, 'id')}"
        )
        sql = (
            f"SELECT {col(token, 'id')}, {col(user, 'id')}, {col(user, 'is_active')}, "  # noqa: S608
            f"{col(user, 'is_staff')}, {col(user, 'is_superuser')}, "
            f"EXISTS(SELECT 1 FROM {q(member.db_table)} WHERE {col(member, 'user')} = {col(user, 'id')} "
            f"AND {col(member, 'site')} = %s), "
            f"(EXISTS({holds(user_perms, 'user', col(user, 'id'))}) OR EXISTS("
            f"SELECT 1 FROM {q(group_perms.db_table)} WHERE {col(group_perms, 'group')} IN ({group_ids}) "
            f"AND {col(group_perms, 'permission')} IN ({use_ai}))), "
            f"{col(token, 'site')}, {col(token, 'scopes')}, {col(token, 'expires_at')}, "
            f"{col(token, 'revoked_at')}, {col(token, 'last_used_at')} "
            f"FROM {q(token.db_table)} INNER JOIN {q(user.db_table)} ON {col(token, 'user')} = {col(user, 'id')} "
            f"WHERE {col(token, 'key_hash')} = %s"
        )
        _SQL[connection.vendor] = sql
    return sql


def _scopes(raw: Any) -> tuple[str, ...]:
    """The scopes column as the driver returns it (JSON text on SQLite, a list on PostgreSQL)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return ()
    return tuple(s for s in raw if isinstance(s, str)) if isinstance(raw, list) else ()


def _moment(raw: Any) -> datetime.datetime | None:
    """A datetime column as an aware datetime (SQLite returns the text)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = datetime.datetime.fromisoformat(raw)
    if timezone.is_naive(raw):
        raw = timezone.make_aware(raw, datetime.UTC)
    return raw


def _load(key_hash: str, site_id: int, version: int, now: float) -> _Entry:
    with connection.cursor() as cursor:
        cursor.execute(_sql(), [site_id, *USE_AI, *USE_AI, key_hash])
        row = cursor.fetchone()
    if row is None:
        return _Entry(None, version, now, now, None)
    token_id, user_id, active, is_staff, is_superuser, is_member, may_use_ai, token_site = row[:8]
    scopes, expires_at, revoked_at, last_used_at = row[8:]
    grant = Grant(
        token_id=token_id,
        user_id=user_id,
        active=bool(active),
        is_staff=bool(is_staff),
        is_superuser=bool(is_superuser),
        is_member=bool(is_member),
        may_use_ai=bool(may_use_ai),
        token_site=token_site,
        scopes=_scopes(scopes),
        expires_at=_moment(expires_at),
        revoked=revoked_at is not None,
    )
    return _Entry(grant, version, now, now, _moment(last_used_at))


def _version() -> int:
    return int(cache.get(VERSION_KEY) or 0)


def _remember(key: tuple[str, int], entry: _Entry) -> None:
    with _lock:
        if len(_entries) >= MAX_REMEMBERED and key not in _entries:
            _entries.clear()
        _entries[key] = entry


def grant_for(key_hash: str, site_id: int) -> Grant | None:
    """What the token with this hash may do on the site (None: no such token); a warm token makes no query.

    A `DatabaseError` only for a token this process has no answer for while the database is unreachable."""
    key = (key_hash, site_id)
    now = time.monotonic()
    entry = _entries.get(key)
    if entry is not None and now - entry.checked_at < settings_check_interval() and now - entry.loaded_at < MAX_AGE:
        return entry.grant
    version = _version()
    if entry is not None and getattr(cache, "degraded", False):
        version = entry.version  # the shared cache is unreachable (panel.cache): keep what this process knows
    if entry is not None and entry.version == version and now - entry.loaded_at < MAX_AGE:
        entry = replace(entry, checked_at=now)
    else:
        try:
            entry = _load(key_hash, site_id, version, now)
        except DatabaseError:
            if entry is None:
                raise
            entry = replace(entry, checked_at=now, loaded_at=now)  # through the outage: the last known answer
    _remember(key, entry)
    return entry.grant


def record_use(key_hash: str, site_id: int, grant: Grant, now: datetime.datetime) -> None:
    """Write the token's last use if this process has not known it to be written within `LAST_USED_RESOLUTION`.

    The update is conditional (a row another process stamped within the resolution is left alone), so at most
    one write per token and resolution per process, and none while the database is unreachable."""
    key = (key_hash, site_id)
    entry = _entries.get(key)
    cutoff = now - LAST_USED_RESOLUTION
    if entry is not None and entry.used_at is not None and entry.used_at > cutoff:
        return
    from integrations.models import APIToken

    try:
        APIToken.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=cutoff), pk=grant.token_id).update(
            last_used_at=now
        )
    except DatabaseError:  # an outage: the call is served from the remembered answer, its last use is not written
        return
    if entry is not None:
        _remember(key, replace(entry, used_at=now))


def forget() -> None:
    """Drop this process's remembered answers (as a process that has seen no token)."""
    with _lock:
        _entries.clear()


def bump(**_kwargs: object) -> None:
    """Something a token's answer depends on changed: every process re-reads its tokens (this one at once)."""
    if not cache.add(VERSION_KEY, 1, timeout=None):
        try:
            cache.incr(VERSION_KEY)
        except ValueError:  # evicted between add and incr
            cache.set(VERSION_KEY, 1, timeout=None)
    forget()


def _user_saved(update_fields: frozenset[str] | None = None, **kwargs: object) -> None:
    if update_fields is not None and set(update_fields) <= {"last_login", "password"}:
        return  # a login (or a password change) changes nothing a token's answer holds
    bump()


def connect() -> None:
    """Bump the version whenever a token, a user, a membership or a permission changes (the app's ready())."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission

    from integrations.models import APIToken, VirtualKey
    from tenancy.models import SiteMembership

    User = get_user_model()
    uid = "integrations.api.tokens"
    for model in (APIToken, VirtualKey, SiteMembership, Group, Permission):  # a proxy's saves name the proxy
        post_save.connect(bump, sender=model, dispatch_uid=f"{uid}.save.{model.__name__}")
        post_delete.connect(bump, sender=model, dispatch_uid=f"{uid}.delete.{model.__name__}")
    post_save.connect(_user_saved, sender=User, dispatch_uid=f"{uid}.save.user")
    post_delete.connect(bump, sender=User, dispatch_uid=f"{uid}.delete.user")
    for through in (User.user_permissions.through, User.groups.through, Group.permissions.through):
        m2m_changed.connect(bump, sender=through, dispatch_uid=f"{uid}.m2m.{through.__name__}")
