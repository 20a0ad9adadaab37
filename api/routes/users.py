"""The merchant's team: list, invite, change role or branch, deactivate."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import RequestMeta, Session, Settings, require_portal_permission
from node.auth.principal import MerchantPrincipal
from node.merchants import repository as repo
from node.merchants import team
from node.merchants.schemas import Data, InviteUserIn, UpdateUserIn, UserOut

router = APIRouter(prefix="/v1/users", tags=["users"])

Read = Annotated[MerchantPrincipal, Depends(require_portal_permission("users:read"))]
Manage = Annotated[MerchantPrincipal, Depends(require_portal_permission("users:manage"))]


@router.get("", response_model=Data[list[UserOut]], summary="Users of this merchant")
async def list_users(session: Session, principal: Read) -> Data[list[UserOut]]:
    return Data(data=[UserOut.of(u) for u in await repo.list_users(session, principal.merchant_id)])


@router.post("/invite", status_code=201, response_model=Data[UserOut], summary="Invite a user by e-mail")
async def invite_user(body: InviteUserIn, session: Session, settings: Settings, principal: Manage,
                      meta: RequestMeta) -> Data[UserOut]:
    user = await team.invite(session, settings, principal.merchant_id, email=str(body.email), name=body.name,
                             role=body.role, branch_id=body.branch_id, invited_by=principal.user_id, meta=meta)
    return Data(data=UserOut.of(user))


@router.patch("/{userId}", response_model=Data[UserOut], summary="Change role, branch or active state")
async def update_user(userId: uuid.UUID, body: UpdateUserIn, session: Session, principal: Manage,
                      meta: RequestMeta) -> Data[UserOut]:
    assert principal.user_id is not None
    fields = body.model_fields_set
    user = await team.update_user(
        session, principal.merchant_id, userId, actor_id=principal.user_id, role=body.role,
        branch_id=body.branch_id if "branch_id" in fields else team._UNSET,
        is_active=body.is_active, meta=meta)
    return Data(data=UserOut.of(user))


@router.delete("/{userId}", response_model=Data[UserOut], summary="Deactivate a user")
async def deactivate_user(userId: uuid.UUID, session: Session, principal: Manage,
                          meta: RequestMeta) -> Data[UserOut]:
    assert principal.user_id is not None
    user = await team.update_user(session, principal.merchant_id, userId, actor_id=principal.user_id,
                                  is_active=False, meta=meta)
    return Data(data=UserOut.of(user))
