"""Unit tests get a fresh media folder each, so "nothing was written" can be checked."""

import pytest


@pytest.fixture(autouse=True)
def _fresh_media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
