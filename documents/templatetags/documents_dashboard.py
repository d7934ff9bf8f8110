"""``{% documents_dashboard %}``: the documents dashboard on the admin's home page."""

from __future__ import annotations

from typing import Any

from django import template

from documents import dashboard

register = template.Library()


@register.inclusion_tag("admin/documents/dashboard.html", takes_context=True)
def documents_dashboard(context: template.Context) -> dict[str, Any]:
    """The dashboard for users who may see documents; nothing for the others."""
    request = context.get("request")
    if request is None or not request.user.has_perm("documents.view_document"):
        return {"show_dashboard": False}
    # An inclusion tag starts a new context: the forms in it need the page's CSRF token.
    return {
        **dashboard.dashboard_context(request),
        "request": request,
        "csrf_token": context.get("csrf_token"),
    }
