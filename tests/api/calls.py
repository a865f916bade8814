"""How the API tests call POST /api/ai/generate/: as a front end would, with a host and a token."""

from __future__ import annotations

import json

OAI_KEY = "sk-proj-" + "f1" * 24
URL = "/api/ai/generate/"
HOST = "shop.example.test"


def post(client, body, token=None, host=HOST, raw=None):
    headers = {"HTTP_HOST": host}
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Token {token}"
    return client.post(
        URL, data=raw if raw is not None else json.dumps(body), content_type="application/json", **headers
    )


def code_of(response):
    return response.json()["error"]["code"]
