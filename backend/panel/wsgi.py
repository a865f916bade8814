"""The WSGI application (`SERVER=wsgi bin/serve`); `/v1/` requests go to their own handler (`panel.api_handler`)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")
_site = get_wsgi_application()

from panel.api_handler import APIWSGIHandler, wsgi_router  # noqa: E402

application = wsgi_router(_site, APIWSGIHandler())
