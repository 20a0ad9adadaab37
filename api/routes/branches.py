"""Branches of the caller's merchant."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import RequestMeta, Session, require_permission
from node.auth.principal import MerchantPrincipal
from node.errors import NotFound
from node.merchants import branches
from node.merchants import repository as repo
from node.merchants.schemas import BranchIn, BranchOut, BranchUpdateIn, Data, OkOut

router = APIRouter(prefix="/v1/branches", tags=["branches"])

Read = Annotated[MerchantPrincipal, Depends(require_permission("branches:read"))]
Write = Annotated[MerchantPrincipal, Depends(require_permission("branches:write"))]


def _visible(principal: MerchantPrincipal, branch_id: uuid.UUID) -> None:
    # a branch-scoped user sees only its own branch
    if principal.branch_id is not None and principal.branch_id != branch_id:
        raise NotFound("branch not found")


@router.get("", response_model=Data[list[BranchOut]], summary="Branches")
async def list_branches(session: Session, principal: Read) -> Data[list[BranchOut]]:
    rows = await repo.list_branches(session, principal.merchant_id)
    if principal.branch_id is not None:
        rows = [b for b in rows if b.id == principal.branch_id]
    return Data(data=[BranchOut.model_validate(b) for b in rows])


@router.post("", status_code=201, response_model=Data[BranchOut], summary="Create a branch")
async def create_branch(body: BranchIn, session: Session, principal: Write, meta: RequestMeta) -> Data[BranchOut]:
    values = body.model_dump(exclude_none=True)
    values["defaults"] = body.defaults.model_dump(by_alias=True, exclude_none=True) if body.defaults else {}
    branch = await branches.create(session, principal.merchant_id, values, actor_id=principal.user_id, meta=meta)
    return Data(data=BranchOut.model_validate(branch))


@router.get("/{branchId}", response_model=Data[BranchOut], summary="A branch")
async def get_branch(branchId: uuid.UUID, session: Session, principal: Read) -> Data[BranchOut]:
    _visible(principal, branchId)
    return Data(data=BranchOut.model_validate(await branches.get(session, principal.merchant_id, branchId)))


@router.put("/{branchId}", response_model=Data[BranchOut], summary="Update a branch")
async def update_branch(branchId: uuid.UUID, body: BranchUpdateIn, session: Session, principal: Write,
                        meta: RequestMeta) -> Data[BranchOut]:
    _visible(principal, branchId)
    values = body.model_dump(exclude_unset=True)
    if "defaults" in values:
        values["defaults"] = body.defaults.model_dump(by_alias=True, exclude_none=True) if body.defaults else {}
    branch = await branches.update(session, principal.merchant_id, branchId, values, actor_id=principal.user_id,
                                   meta=meta)
    return Data(data=BranchOut.model_validate(branch))


@router.delete("/{branchId}", response_model=Data[OkOut], summary="Delete a branch (soft)")
async def delete_branch(branchId: uuid.UUID, session: Session, principal: Write, meta: RequestMeta) -> Data[OkOut]:
    _visible(principal, branchId)
    await branches.delete(session, principal.merchant_id, branchId, actor_id=principal.user_id, meta=meta)
    return Data(data=OkOut())
