"""``POST /api/v1/search``: the async service awaited on the server's own event loop."""

from __future__ import annotations

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest
from ninja import Router

from documents import ingestion
from documents.api.schemas import ErrorOut, SearchIn, SearchOut
from documents.highlight import excerpt
from documents.models import ApiKey

router = Router(tags=["search"])


def _collections(requested: list[str] | None, allowed: list[str]) -> list[str] | None:
    """The collections to search: the request's, within the key's (None: no condition)."""
    if not allowed:
        return requested
    if requested is None:
        return list(allowed)
    return [c for c in requested if c in allowed]


@router.post("/search", response={200: SearchOut, 400: ErrorOut, 401: ErrorOut, 429: ErrorOut})
async def search(request: HttpRequest, body: SearchIn):
    """The ``k`` chunks that best answer ``query``, with their documents, pages and scores,
    among the documents that pass ``filters`` and the key's collections."""
    api_key: ApiKey = request.auth  # type: ignore[attr-defined]
    wanted = body.filters
    filters = ingestion.SearchFilters(
        document_ids=wanted.document_ids,
        collections=_collections(wanted.collections, api_key.collections),
        created_after=wanted.created_after,
        created_before=wanted.created_before,
    )
    hits = await ingestion.search_async(
        body.query,
        k=body.k,
        mode=body.mode,
        filters=filters,
        on_server_loop=isinstance(request, ASGIRequest),
    )
    return {
        "hits": [{**hit, "text": excerpt(hit["text"], total=hit["text_chars"])} for hit in hits]
    }
