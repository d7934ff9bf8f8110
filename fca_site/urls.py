"""URL routes: the admin is the product's user interface; /api/v1 is for applications."""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from documents.api import api

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
]
