"""A real OpenID Provider on loopback for the single sign-on tests: oidc-provider-mock (a
Flask app built on authlib's server) served over HTTP by werkzeug in a thread, with its own
RSA key, discovery document, JWKS, dynamic client registration, authorization page and token
endpoint. A client is registered with our redirect URI, so the provider checks the client
secret and the redirect URI as a real one does.

A person's claims are set through the provider's own `PUT /users/{sub}`; claims it puts in
the ID token after its standard ones (aud, exp, nonce, iss) let a test have a token issued
to another client, already expired or for another nonce, signed by the provider's real key.
`tamper` changes the ID token's payload on its way out of the token endpoint, leaving the
signature as it was: a token someone altered in transit.
"""

from __future__ import annotations

import base64
import json
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import authlib.deprecate  # noqa: F401  (sets its own filter when imported: before ours below)
import httpx
import werkzeug.serving

with warnings.catch_warnings():
    # The provider package imports authlib modules authlib itself now calls deprecated.
    warnings.simplefilter("ignore")
    import oidc_provider_mock

from services.crypto import KeyVault
from services.settings import Settings

WsgiApp = Any


class Tamper:
    """WSGI middleware before the provider: when `on`, the token endpoint's ID token gets
    another payload (the claims in `claims` changed), its signature untouched."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.on = False
        self.claims: dict[str, Any] = {"email": "angriper@example.com"}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not self.on or environ.get("PATH_INFO") != "/oauth2/token":
            return self.app(environ, start_response)
        captured: dict[str, Any] = {}

        def keep(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda _data: None

        body = b"".join(self.app(environ, keep))
        answer = json.loads(body)
        if "id_token" in answer:
            answer["id_token"] = self._altered(answer["id_token"])
        body = json.dumps(answer).encode()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def _altered(self, token: str) -> str:
        header, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims.update(self.claims)
        encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        return f"{header}.{encoded}.{signature}"


@dataclass
class Provider:
    url: str  # the issuer
    tamper: Tamper
    client_id: str = ""
    client_secret: str = field(default="", repr=False)

    def set_user(self, sub: str, **claims: Any) -> None:
        """The person `sub` with these claims (the provider's own admin endpoint)."""
        response = httpx.put(f"{self.url}/users/{sub}", json=claims, timeout=10)
        assert response.status_code == 204, response.text

    def register(self, redirect_uri: str) -> None:
        """A client of this provider for our app (dynamic client registration)."""
        response = httpx.post(
            f"{self.url}/oauth2/clients",
            json={
                "redirect_uris": [redirect_uri],
                "token_endpoint_auth_method": "client_secret_basic",
            },
            timeout=10,
        )
        assert response.status_code == 201, response.text
        self.client_id = response.json()["client_id"]
        self.client_secret = response.json()["client_secret"]


@contextmanager
def running_provider() -> Iterator[Provider]:
    from services import oidc

    # A provider kept from an earlier test may have had this one's port (and other keys).
    oidc.forget_providers()
    app = oidc_provider_mock.app(require_client_registration=True, require_nonce=True)
    tamper = Tamper(app)
    server = werkzeug.serving.make_server("127.0.0.1", 0, tamper, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Provider(url=f"http://127.0.0.1:{server.server_port}", tamper=tamper)
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


async def configure(
    settings: Settings,
    office: str,
    provider: Provider,
    *,
    display_name: str = "Testleverandør",
    **rules: Any,
) -> int:
    """The office (created when missing) signs in through `provider`: its SigninSettings
    row, the client secret encrypted as the settings page stores it. Returns its id."""
    from sqlmodel import select

    from models import Office
    from models.office import SigninSettings
    from services.db import create_engine, create_session_factory

    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as db:
            row = (await db.exec(select(Office).where(Office.name == office))).first()
            if row is None:
                row = Office(name=office)
                db.add(row)
                await db.flush()
            assert row.id is not None
            signin = SigninSettings(
                office_id=row.id,
                oidc_enabled=True,
                oidc_display_name=display_name,
                oidc_issuer=provider.url,
                oidc_client_id=provider.client_id,
                oidc_client_secret_ciphertext=KeyVault(settings.encryption_keys).encrypt(
                    provider.client_secret
                ),
                **rules,
            )
            db.add(signin)
            await db.commit()
            return row.id
    finally:
        await engine.dispose()


def location_path(url: str) -> str:
    """A redirect's Location to the app, as a path for the test client."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
