"""The ASGI application: what `bin/serve` runs by default (gunicorn with uvicorn workers).

On an event loop a long stream (/v1 with `stream: true`, the admin's test stream) holds no thread:
the async views await the gateway's async driver, and one process holds thousands of open streams.
Sync views still work: Django runs each on a thread of its own. `/v1/` requests go to their own
handler (`panel.api_handler`: no browser middleware, so an async view never leaves the loop for it).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")
_site = get_asgi_application()  # django.setup() first: the API handler reads settings

from panel.api_handler import APIASGIHandler, asgi_router  # noqa: E402

api = APIASGIHandler()
application = asgi_router(_site, api)
