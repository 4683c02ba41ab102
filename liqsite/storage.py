"""Static files storage for DEBUG=0: hashed names and precompressed copies (WhiteNoise)."""

from __future__ import annotations

from django.contrib.staticfiles.storage import ManifestStaticFilesStorage
from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    """Rewrites references inside CSS only. BokehJS's bundles hold source text that mentions
    `sourceMappingURL`, which the JS pattern mistakes for a missing file and aborts on."""

    patterns = tuple(p for p in ManifestStaticFilesStorage.patterns if p[0] == "*.css")
