"""Fault injection for ``tools/fault_campaign.py``: kill this process at a named point of a write, on request.

``DROPBENCH_FAULT=<point>@<n>`` (e.g. ``checkpoint:written@3``) makes the process SIGKILL itself the ``n``-th time it
reaches ``point``; unset (always, outside the campaign and its tests), :func:`fault_point` does nothing but compare a
string. The points sit in the atomic-write helpers, where a machine that dies mid-write would leave its traces:

* ``<what>:tmp-created``: the temporary file exists, empty;
* ``<what>:written``: the temporary file holds everything, not yet renamed over the target;
* ``<what>:renamed``: the target replaced, nothing after it done yet;

with ``<what>`` one of ``checkpoint`` (pretraining / classification), ``mm-checkpoint`` (detection / segmentation)
and ``result`` (``result.json``).
"""

from __future__ import annotations

import os
import signal

__all__ = ["ENV", "fault_point"]

ENV = "DROPBENCH_FAULT"
_hits: dict[str, int] = {}


def fault_point(point: str) -> None:
    """Die here (SIGKILL, as a crash or the scheduler's kill would) if ``DROPBENCH_FAULT`` asks for this hit."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, count = spec.partition("@")
    if name != point:
        return
    _hits[point] = _hits.get(point, 0) + 1
    if _hits[point] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
