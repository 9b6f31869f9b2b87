"""The ``approval`` action: wait for a person to continue the task."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ..inputs import InputDef
from ._paramtypes import PARAMS_CONFIG, WeakStr
from .base import ActionContext


class ApprovalParams(BaseModel):
    """Params of :class:`ApprovalAction`."""

    model_config = PARAMS_CONFIG

    #: shown as the blocked task's reason
    message: WeakStr | None = None
    #: what the person deciding gives with ``continue`` (typed like vars)
    inputs: dict[str, InputDef] = Field(default_factory=dict)
    #: who may decide (``continue --by``/``reject --by``); None: anyone
    approvers: list[WeakStr] | None = Field(None, min_length=1)


class ApprovalAction:
    """Blocks its task until a ``continue`` command, then succeeds with the decision as its
    output (``{"decision": "approved"}``). It holds no execution slot and has no timeout: a
    person may take as long as they need."""

    name = "approval"
    params_model = ApprovalParams
    holds_slot = False

    def default_timeout(self, params: ApprovalParams) -> float | None:
        return None

    async def run(self, ctx: ActionContext, params: ApprovalParams) -> dict[str, Any]:
        if ctx.continued:
            # the decision (inputs, who, when) is the task's output
            decision = dict(ctx.decision or {})
            decision.setdefault("decision", "approved")
            decision.setdefault("inputs", {})
            decision.setdefault("by", None)
            decision.setdefault("at", None)
            return decision
        ctx.block(params.message or "waiting for approval")
