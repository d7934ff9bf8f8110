"""The HTTP API, ``/api/v1`` (django-ninja): documents and search for applications.

Every error is JSON (``{"detail": ...}``), bad input a 4xx. OpenAPI at ``/api/v1/openapi.json``,
the interactive docs at ``/api/v1/docs``.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import ValidationError

from documents.api import documents, search
from documents.api.auth import ApiKeyAuth, RateLimited

logger = logging.getLogger(__name__)

api = NinjaAPI(
    title="FCA documents API",
    version="1",
    description="Upload PDFs, follow their ingestion, search them with citations, delete them. "
    "Authenticate with `Authorization: Bearer <key>` (`manage.py create_api_key`).",
    auth=ApiKeyAuth(),
    urls_namespace="api-v1",
)
api.add_router("", documents.router)
api.add_router("", search.router)


@api.exception_handler(RateLimited)
def rate_limited(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    response = api.create_response(request, {"detail": str(exc)}, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(ValidationError)
def invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    # Pydantic's context may hold exception objects: keep what JSON can carry.
    errors = [
        {key: value for key, value in error.items() if key in ("type", "loc", "msg")}
        for error in exc.errors
    ]
    return api.create_response(request, {"detail": errors}, status=422)
