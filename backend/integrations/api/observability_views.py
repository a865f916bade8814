"""`/healthz`, `/readyz` and `/metrics`, answered by a middleware placed first.

First, so a load balancer's or Kubernetes' probe and a Prometheus scrape (which reach a pod by its
IP, over plain HTTP) are answered before the host check (`ALLOWED_HOSTS`) and the HTTPS redirect
would turn them away, and without sessions, CSRF or the site lookup. Everything else passes through.

`/metrics` is closed unless the deployment opens it: a bearer token (`AI_METRICS_TOKEN`) or client
addresses (`AI_METRICS_ALLOWLIST`, IPs or CIDR ranges of the direct peer, REMOTE_ADDR); without
either it is 404. Both answer JSON except `/metrics` (Prometheus' text format).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from integrations.ai.observability import health, prometheus
from integrations.ai.runtime import conf


def healthz(request: HttpRequest) -> HttpResponse:
    """The process is alive and serving requests (a liveness probe: no dependency is asked)."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> HttpResponse:
    """The database, the cache and the ledger backlog are fine: send traffic here (a readiness probe)."""
    checks = health.checks()
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def _allowed_by_address(address: str, allowlist: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in allowlist:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics of every worker (multiprocess mode), for a token holder or an allowed address."""
    token, allowlist = conf.metrics_token(), conf.metrics_allowlist()
    if not token and not allowlist:
        return JsonResponse({"error": "metrics are off: set AI_METRICS_TOKEN or AI_METRICS_ALLOWLIST"}, status=404)
    given = request.headers.get("Authorization", "")
    by_token = bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    if not by_token and not _allowed_by_address(request.META.get("REMOTE_ADDR", ""), allowlist):
        response = JsonResponse({"error": "send Authorization: Bearer <AI_METRICS_TOKEN>"}, status=401)
        response["WWW-Authenticate"] = "Bearer"
        return response
    body, content_type = prometheus.scrape()
    return HttpResponse(body, content_type=content_type)


ROUTES: dict[str, Callable[[HttpRequest], HttpResponse]] = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}


class ObservabilityMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = ROUTES.get(request.path_info)
        if view is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return JsonResponse({"error": "use GET"}, status=405, headers={"Allow": "GET, HEAD"})
        return view(request)
