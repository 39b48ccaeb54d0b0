"""The user's side of onboarding: the page the TemporaryUrl opens, where the (demo) user ticks
clients and approves or cancels, and the redirect back to the integration's RedirectUri.

The redirect carries `status` and, on approval, `token` (the onboarding token for Finalize)
as query parameters. That is what open-source clients of PowerOffice's onboarding read
(e.g. stianwe/PowerOfficeGoV2Onboarding: `status`, `token`), with the statuses Success,
Canceled, ClientNotFound, NoClientAccess and IntegrationBlocked. Cancelling answers
`status=Canceled` without a token; a ClientOrganizationNo the user cannot reach answers
`status=ClientNotFound` at once.
"""

from __future__ import annotations

from html import escape
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from simulators.poweroffice.model import OnboardingSession
from simulators.poweroffice.state import PowerOfficeState


def redirect_url(base: str, **params: str) -> str:
    """`base` with `params` added to whatever query it already has."""
    parts = urlsplit(base)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def page(state: PowerOfficeState, session: OnboardingSession, message: str = "") -> str:
    rows = "\n".join(
        f'<li><label><input type="checkbox" name="client" value="{c.id}" checked> '
        f"{escape(c.name)} <small>({escape(c.org_no)})</small></label></li>"
        for c in state.offered_clients(session)
    )
    notice = f'<p role="alert">{escape(message)}</p>' if message else ""
    return f"""<!doctype html>
<html lang="nb"><head><meta charset="utf-8"><title>PowerOffice Go – godkjenn integrasjon</title>
</head><body>
<h1>PowerOffice Go (simulator)</h1>
<p>En integrasjon ber om tilgang til klientene du velger. Innlogget som
{escape(state.user_email)}.</p>
{notice}
<form method="post" action="ApiAuthV2">
<input type="hidden" name="token" value="{escape(session.token)}">
<ul>
{rows}
</ul>
<button type="submit" name="action" value="approve">Godkjenn</button>
<button type="submit" name="action" value="refuse">Avbryt</button>
</form>
</body></html>
"""


EXPIRED_PAGE = """<!doctype html>
<html lang="nb"><head><meta charset="utf-8"><title>PowerOffice Go</title></head><body>
<h1>PowerOffice Go (simulator)</h1>
<p>Lenken er ugyldig eller utløpt. Start tilkoblingen på nytt fra integrasjonen.</p>
</body></html>
"""
