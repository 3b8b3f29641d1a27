"""Import Great Expectations quietly: analytics off before the first import; its objects kept out of later collections.

GX's import leaves some 400,000 objects that live as long as the process. Python's collector
walks every one of them on each full collection; the first full collection after the import
fell during a cold ``cinqa validate``'s own work and cost about 0.25 s CPU, a quarter of it.
Freezing what exists once GX is loaded (:func:`gc.freeze`) keeps those objects out of every
later collection; reference counting still frees any of them that is dropped.
"""

from __future__ import annotations

import gc
import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

import great_expectations  # noqa: E402,F401  (imported for its side effect of loading GX once)

gc.freeze()
