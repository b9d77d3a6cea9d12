"""Everything about a request that can be checked before a job runs, in one call for every front end.

The engine server, the CLI and batch call ``validate`` at submission, so a missing file, a region outside
it or an artist the model does not know fails in milliseconds with a protocol error code, never minutes
later in the worker.
"""

from __future__ import annotations

from engine.errors import ErrorCode
from engine.io.effects import ChainError, check_chain
from engine.request import RenderRequest, RequestError
from engine.weights.models import Models

from .conditioning import check_labels
from .refine import check_draft, load_draft
from .source import check_source, source_warnings


def validate(req: RenderRequest, models: Models) -> tuple[str, ...]:
    """Raises ``RequestError`` (source_not_found, not_audio, bad_value, unknown_label) naming the field. A refine
    request is checked as ``generate.refine.prepare_refine`` filled it. Returns the warnings of an accepted
    request (a truncated source the request allowed), which the front end shows with its acceptance."""
    region = check_source(req)
    if req.mode == "refine":  # a draft take with saved codes, drafted by this model
        check_draft(load_draft(req.source), models)
    check_lengths(req, models, region)
    check_labels(models, req)
    if req.chain is not None:  # where it points, not yet loaded (plugins load when the job runs)
        try:
            check_chain(req.chain)
        except ChainError as exc:
            raise RequestError(ErrorCode.BAD_VALUE, str(exc), "chain") from None
    return source_warnings(req)


def check_lengths(req: RenderRequest, models: Models, region: float | None) -> None:
    """Nothing shorter than one top-level token (the coarsest code: ``hop_lengths[-1]`` samples at the model's
    rate), neither the new material nor the source region, so ``seconds: 1e-9`` is refused before any work."""
    token = models.vqvae.hop_lengths[-1] / models.sample_rate
    if req.mode in ("generate", "continue", "prime") and req.target_seconds < token:
        field = "bars" if req.bars is not None and req.tempo is not None else "seconds"
        raise RequestError(ErrorCode.BAD_VALUE, f"{field} asks for {req.target_seconds:.6g} s; the minimum is "
                           f"{token:.6f} s (one top-level token of this model)", field)
    if region is not None and region < token:
        raise RequestError(ErrorCode.BAD_VALUE, f"the region is {region:.6g} s long; the minimum is {token:.6f} s "
                           f"(one top-level token of this model): select more audio", "length")
