"""KYC over HTTP: users submit and read their status; operators review."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from coinpurse.core import cursor
from coinpurse.core.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from coinpurse.http.deps import Admin, AdminWriter, State, UserId, client_ip
from coinpurse.http.responses import json_response, problems
from coinpurse.kyc import schemas as s
from coinpurse.kyc import service as svc
from coinpurse.kyc.errors import KycSubmissionNotPending, KycSubmissionPending

router = APIRouter(tags=["kyc"])
SubmissionId = Annotated[str, Path(max_length=36, pattern=r"^[0-9a-f-]{1,36}$")]


def _answer(body: BaseModel, status: int = 200) -> Response:
    return json_response(body.model_dump(mode="json"), status)


@router.get("/api/v1/kyc", response_model=s.KycStatusOut, responses=problems(Unauthorized),
            summary="The caller's tier, its limits, and their latest submission")
async def my_status(user_id: UserId, state: State) -> Response:
    """The caller's tier, its limits per currency, what the next tier requires, and the latest
    submission with its status."""
    return _answer(s.KycStatusOut.from_domain(
        await svc.status(state.db, state.settings, user_id)))


@router.post("/api/v1/kyc", status_code=201, response_model=s.SubmissionOut,
             responses=problems(ValidationFailed, Unauthorized, KycSubmissionPending),
             summary="Submit what a higher tier requires")
async def submit(body: s.KycIn, user_id: UserId, state: State) -> Response:
    """Tier 1 typically needs `full_name`, `date_of_birth`, `country`; tier 2 also
    `id_document_ref` and `selfie_ref` — references to documents you store elsewhere.
    One submission waits for review at a time."""
    data = body.model_dump(mode="json", exclude={"tier"})
    submission = await svc.submit(state.db, state.settings, user_id, body.tier, data)
    return _answer(s.SubmissionOut.from_domain(submission), 201)


@router.get("/admin/v1/kyc/submissions", response_model=s.SubmissionPage, tags=["admin"],
            responses=problems(ValidationFailed, Unauthorized, Forbidden),
            summary="Submissions, newest first (status=pending: the review queue)")
async def admin_list(admin: Admin, state: State,
                     status: Annotated[str | None, Query(max_length=16)] = None,
                     user_id: Annotated[str | None, Query(max_length=128)] = None,
                     limit: Annotated[int, Query(ge=1, le=100)] = 50,
                     cursor_: Annotated[str | None, Query(alias="cursor",
                                                          max_length=96)] = None,
                     ) -> Response:
    """KYC submissions, newest first; `status=pending` is the review queue. Admin or auditor."""
    found, next_id = await svc.list_submissions(state.db, status=status, user_id=user_id,
                                                before=cursor.decode_text(cursor_), limit=limit)
    return _answer(s.SubmissionPage(
        data=[s.AdminSubmissionOut.from_domain(x) for x in found],
        next_cursor=cursor.encode_text(next_id) if next_id else None))


@router.get("/admin/v1/kyc/users/{user_id}", response_model=s.KycStatusOut, tags=["admin"],
            responses=problems(Unauthorized, Forbidden), summary="A user's KYC status")
async def admin_user(user_id: Annotated[str, Path(max_length=128)], admin: Admin,
                     state: State) -> Response:
    """A user's tier and submissions. Admin or auditor."""
    return _answer(s.KycStatusOut.from_domain(
        await svc.status(state.db, state.settings, user_id)))


@router.post("/admin/v1/kyc/submissions/{submission_id}/approve",
             response_model=s.AdminSubmissionOut, tags=["admin"],
             responses=problems(Unauthorized, Forbidden, NotFound, KycSubmissionNotPending),
             summary="Approve: the user moves to the submission's tier")
async def approve(submission_id: SubmissionId, admin: AdminWriter, state: State,
                  request: Request, body: s.DecisionIn | None = None) -> Response:
    """Moves the user to the submission's tier. A decided submission answers 409
    `kyc_submission_not_pending`. Admin only; audited."""
    decided = await svc.decide(state.db, admin, submission_id, approve=True,
                               reason=body.reason if body else None, ip=client_ip(request))
    return _answer(s.AdminSubmissionOut.from_domain(decided))


@router.post("/admin/v1/kyc/submissions/{submission_id}/reject",
             response_model=s.AdminSubmissionOut, tags=["admin"],
             responses=problems(ValidationFailed, Unauthorized, Forbidden, NotFound,
                                KycSubmissionNotPending),
             summary="Reject, with a reason the user sees")
async def reject(submission_id: SubmissionId, body: s.RejectIn, admin: AdminWriter,
                 state: State, request: Request) -> Response:
    """Rejects the submission with a reason the user sees; the tier does not change. Admin
    only; audited."""
    decided = await svc.decide(state.db, admin, submission_id, approve=False,
                               reason=body.reason, ip=client_ip(request))
    return _answer(s.AdminSubmissionOut.from_domain(decided))
