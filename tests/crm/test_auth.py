"""No endpoint answers without a token, and none without the scope it needs."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")


def api_endpoints():
    """(path, method) for every route under /api/v1/, with 1 for every path parameter."""
    found = []

    def walk(patterns, prefix):
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern) and route.startswith("api/v1/"):
                path = "/" + re.sub(r"<(?:\w+:)?\w+>", "1", route).replace("^", "").replace("$", "")
                callback = entry.callback
                cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
                actions = getattr(callback, "actions", None)
                methods = list(actions) if actions else [m for m in METHODS if cls and hasattr(cls, m)]
                found.extend((path, method) for method in methods)

    walk(get_resolver().url_patterns, "")
    return sorted(set(found))


ENDPOINTS = api_endpoints()


def test_the_core_endpoints_are_all_checked():
    paths = {path for path, _ in ENDPOINTS}
    assert {"/api/v1/interactions/", "/api/v1/customers/1/timeline/", "/api/v1/merges/1/undo/"} <= paths


@pytest.mark.parametrize(("path", "method"), ENDPOINTS)
def test_every_endpoint_answers_401_without_a_token(path, method):
    response = getattr(APIClient(), method)(path, {}, format="json")

    assert response.status_code == 401, (path, method, response.content[:200])
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(("path", "method"), ENDPOINTS)
def test_every_endpoint_answers_403_naming_the_scope_a_token_lacks(path, method):
    from integrations.services import api_token_create

    _, raw = api_token_create(name="no scopes", scopes=[])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    response = getattr(client, method)(path, {}, format="json")

    assert response.status_code == 403, (path, method, response.content[:200])
    body = response.json()
    assert body["code"] == "missing_scope"
    assert body["required_scope"] in body["detail"]


def test_a_wrong_or_revoked_token_is_401(make_token):
    from integrations.models import ApiToken
    from integrations.services import api_token_revoke

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer crm_not-a-real-token")
    assert client.get("/api/v1/customers/").status_code == 401

    raw = make_token("customers:read")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/customers/").status_code == 200
    api_token_revoke(token=ApiToken.objects.get(name="test"))
    assert client.get("/api/v1/customers/").status_code == 401


def test_tokens_are_stored_hashed(make_token):
    from integrations.models import ApiToken

    raw = make_token("customers:read")

    stored = ApiToken.objects.get()
    assert raw not in (stored.token_hash, stored.prefix) and len(stored.token_hash) == 64
    assert raw.startswith(stored.prefix)


def test_a_token_with_the_scope_passes_and_one_without_gets_403(scoped_api):
    reader = scoped_api("customers:read")

    assert reader.get("/api/v1/customers/").status_code == 200
    denied = reader.post("/api/v1/interactions/", {}, format="json")
    assert denied.status_code == 403
    assert denied.json()["required_scope"] == "interactions:write"


def test_staff_session_can_use_the_api_and_the_docs(client, staff_user):
    client.force_login(staff_user)

    assert client.get("/api/v1/customers/").status_code == 200
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


def test_the_create_api_token_command_prints_the_token_once(capsys):
    from django.core.management import call_command

    from integrations.selectors import api_token_get_active

    call_command("create_api_token", "shop", "--scope", "interactions:write", "--scope", "customers:read")

    raw = capsys.readouterr().out.strip()
    token = api_token_get_active(raw=raw)
    assert token.name == "shop" and token.scopes == ["customers:read", "interactions:write"]


def test_the_schema_declares_bearer_tokens_for_every_operation(staff_user):
    import yaml

    client = APIClient()
    client.force_login(staff_user)

    schema = yaml.safe_load(client.get("/api/schema/").content)

    assert schema["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"
    operations = [op for path in schema["paths"].values() for op in path.values() if isinstance(op, dict)]
    assert operations and all({"apiToken": []} in op["security"] for op in operations)
