"""La Posta (the in-app inbox) and notification preferences of the caller.

Each caller reads the mailboxes of what it is: a family its household's, a partner
operator its organisation's, alliance staff their alliances'. The notifications
service decides which, from the viewer the gateway authenticated.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status

from gateway.deps import CurrentPrincipal, Rpc, require_scope
from gateway.responses import service_json
from gateway.schemas.common import PaginationDep
from gateway.schemas.enrolments import viewer_of
from gateway.schemas.notifications import InboxItemId, InboxPage, PreferencesIn, PreferencesOut, UnreadCount

router = APIRouter(prefix="/v1/me", tags=["la posta"])

CanRead = Depends(require_scope("inbox:read"))
CanWrite = Depends(require_scope("inbox:write"))


@router.get("/inbox", response_model=InboxPage, dependencies=[CanRead], summary="La Posta: i propri messaggi")
async def list_inbox(
    rpc: Rpc,
    principal: CurrentPrincipal,
    page: PaginationDep,
    unread_only: Annotated[bool, Query(description="Solo i messaggi non letti")] = False,
) -> Any:
    query = {"unread_only": unread_only, **page.model_dump()}
    return service_json(await rpc.call("notifications", "list_inbox", viewer=viewer_of(principal), query=query))


@router.get("/inbox/unread-count", response_model=UnreadCount, dependencies=[CanRead], summary="Messaggi non letti")
async def unread_count(rpc: Rpc, principal: CurrentPrincipal) -> Any:
    count = await rpc.call("notifications", "unread_count", viewer=viewer_of(principal))
    return service_json({"unread": count})


@router.post(
    "/inbox/{item_id}/read",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[CanWrite],
    summary="Segna un messaggio come letto",
)
async def mark_read(item_id: InboxItemId, rpc: Rpc, principal: CurrentPrincipal) -> Response:
    await rpc.call("notifications", "mark_read", viewer=viewer_of(principal), item_id=item_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/notification-preferences",
    response_model=PreferencesOut,
    dependencies=[CanRead],
    summary="Preferenze di notifica (canali, tipi di evento, lingua)",
)
async def get_preferences(rpc: Rpc, principal: CurrentPrincipal) -> Any:
    return service_json(await rpc.call("notifications", "get_preferences", viewer=viewer_of(principal)))


@router.put(
    "/notification-preferences",
    response_model=PreferencesOut,
    dependencies=[CanWrite],
    summary="Imposta le preferenze di notifica (gli esiti delle iscrizioni non si possono disattivare)",
)
async def set_preferences(body: PreferencesIn, rpc: Rpc, principal: CurrentPrincipal) -> Any:
    payload = body.model_dump(mode="json")
    return service_json(
        await rpc.call("notifications", "set_preferences", viewer=viewer_of(principal), payload=payload)
    )
