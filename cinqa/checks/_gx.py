"""Import Great Expectations quietly: analytics off before the first import."""

from __future__ import annotations

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

import great_expectations  # noqa: E402,F401  (imported for its side effect of loading GX once)
