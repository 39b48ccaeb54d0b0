"""Oppfølging: one list, across the office's integrations, of the clients that need the
accountant (an error, no access, or not updated within a day)."""

from litestar import get
from litestar.di import NamedDependency
from litestar.response import Template
from sqlmodel.ext.asyncio.session import AsyncSession

from services import clients as client_service
from services.auth import CurrentUser
from web.guards import READER

SHOWN = 500  # rows on the page; the count says how many there are in all


@get("/integrasjoner/oppfolging", opt=READER)
async def attention(
    db: NamedDependency[AsyncSession], user: NamedDependency[CurrentUser]
) -> Template:
    rows, total = await client_service.needing_attention(db, user.office_id, limit=SHOWN)
    return Template(
        "pages/attention.html",
        context={"user": user, "rows": rows, "total": total, "shown": SHOWN},
    )
