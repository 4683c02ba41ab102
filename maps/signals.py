from __future__ import annotations

from django.dispatch import Signal

# Sent after a market's snapshots were recomputed and committed: kwargs market_id, windows.
snapshots_computed = Signal()
