"""Sending an e-mail through the configured SMTP server (SMTP_* settings), with the standard
library's smtplib in a worker thread: STARTTLS or TLS from the start as configured, the
server's certificate checked, a login when a user name is set.

What goes wrong is a MailError with a Norwegian reason for the page (`reason`) and a short
English one for the log (`detail`); neither ever holds the password."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage

from services.settings import SmtpConfig

TIMEOUT = 20.0  # seconds for each step with the server: connect, each command, the data


class MailError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason  # Norwegian, for the page
        self.detail = detail  # for the log


class Mailer:
    def __init__(
        self,
        config: SmtpConfig,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        if not config.configured:
            raise ValueError("SMTP is not configured (SMTP_HOST)")
        self.config = config
        self._ssl_context = ssl_context  # tests trust their own certificate; else the system's
        self._timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        """Send it, or MailError. The SMTP talk runs in a thread; a cancelled caller does not
        wait for it, and the thread ends within the timeout."""
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        config = self.config
        assert config.host is not None
        context = self._ssl_context or ssl.create_default_context()
        try:
            if config.security == "tls":
                server: smtplib.SMTP = smtplib.SMTP_SSL(
                    config.host, config.port, timeout=self._timeout, context=context
                )
            else:
                server = smtplib.SMTP(config.host, config.port, timeout=self._timeout)
            with server:
                server.ehlo()
                if config.security == "starttls":
                    server.starttls(context=context)
                    server.ehlo()
                if config.username is not None and config.password is not None:
                    server.login(config.username, config.password)
                server.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise MailError(
                "E-postserveren godtok ikke brukernavnet eller passordet (SMTP_USERNAME og "
                "SMTP_PASSWORD).",
                f"SMTP login refused: {exc.smtp_code}",
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise MailError(
                "E-postserveren tilbyr ikke det som er satt opp (STARTTLS eller innlogging). "
                "Kontroller SMTP_TLS og SMTP_PORT.",
                "SMTP server does not support STARTTLS or AUTH",
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(exc.recipients)
            codes = ", ".join(str(code) for code, _ in exc.recipients.values())
            raise MailError(
                f"E-postserveren tok ikke imot mottakeradressen {refused}.",
                f"SMTP recipient refused: {codes}",
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise MailError(
                f"E-postserveren avviste e-posten (svar {exc.smtp_code}).",
                f"SMTP answered {exc.smtp_code}",
            ) from None
        except TimeoutError:
            raise MailError(
                "Tidsavbrudd: e-postserveren svarte ikke.", "SMTP server timed out"
            ) from None
        except ssl.SSLError as exc:
            raise MailError(
                "Kunne ikke opprette en sikker forbindelse (TLS) til e-postserveren.",
                f"SMTP TLS failed: {exc.reason or type(exc).__name__}",
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(
                "Kunne ikke koble til e-postserveren.",
                f"SMTP connection failed: {type(exc).__name__}",
            ) from None
