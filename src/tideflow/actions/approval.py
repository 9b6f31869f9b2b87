"""The ``approval`` action: wait for a person to continue the task."""

from __future__ import annotations

from pydantic import BaseModel

from ._paramtypes import PARAMS_CONFIG, WeakStr
from .base import ActionContext


class ApprovalParams(BaseModel):
    """Params of :class:`ApprovalAction`."""

    model_config = PARAMS_CONFIG

    #: shown as the blocked task's reason
    message: WeakStr | None = None


class ApprovalAction:
    """Blocks its task until a ``continue`` command, then succeeds. It holds no execution slot
    and has no timeout: a person may take as long as they need."""

    name = "approval"
    params_model = ApprovalParams
    holds_slot = False

    def default_timeout(self, params: ApprovalParams) -> float | None:
        return None

    async def run(self, ctx: ActionContext, params: ApprovalParams) -> None:
        if ctx.continued:
            ctx.trace("approved")
            return
        ctx.block(params.message or "waiting for approval")
