"""Everything about a request that can be checked before a job runs, in one call for every front end.

The engine server, the CLI and batch call ``validate`` at submission, so a missing file, a region outside
it or an artist the model does not know fails in milliseconds with a protocol error code, never minutes
later in the worker.
"""

from __future__ import annotations

from engine.request import RenderRequest
from engine.weights.models import Models

from .conditioning import check_labels
from .source import check_source


def validate(req: RenderRequest, models: Models) -> None:
    """Raises ``RequestError`` (source_not_found, not_audio, bad_value, unknown_label) naming the field."""
    check_source(req)
    check_labels(models, req)
