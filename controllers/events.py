"""Kubernetes Events about the objects the controllers act on.

The recorder is the one every component shares (``client.events``: best effort,
bounded, correlated into counts as client-go's). This module keeps the
controllers' import path: ``Recorder(client, component, wall=…)`` and
``record(obj, kind=…, type_=…, reason=…, message=…)``.
"""

from __future__ import annotations

from client.events import NORMAL, WARNING, Recorder, event_body

__all__ = ["NORMAL", "WARNING", "Recorder", "event_body"]
