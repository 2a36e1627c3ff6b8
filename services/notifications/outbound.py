"""The channels' outside world: an SMTP server and integrators' webhook receivers."""

import email.policy
import queue
import smtplib
import ssl
from email.message import EmailMessage as MimeMessage
from email.utils import formatdate, make_msgid

import httpx

from services.notifications.messages import EmailMessage
from services.notifications.settings import NotificationSettings

UNFOLDED = email.policy.SMTP.clone(max_line_length=998)


class WebhookRefused(Exception):
    """The receiver answered with a status other than 2xx."""


class SmtpSender:
    """Sends messages over SMTP (STARTTLS and login when configured), reusing connections.

    Open connections wait in a small pool between messages (a new TCP connection,
    greeting, EHLO and STARTTLS per message would cost more than the message); one
    the server dropped meanwhile is replaced once, transparently.
    """

    POOL_SIZE = 8

    def __init__(self, settings: NotificationSettings) -> None:
        self.settings = settings
        self.pool: queue.LifoQueue[smtplib.SMTP] = queue.LifoQueue(maxsize=self.POOL_SIZE)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
        try:
            if s.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_username:
                password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                smtp.login(s.smtp_username, password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _release(self, smtp: smtplib.SMTP) -> None:
        try:
            self.pool.put_nowait(smtp)
        except queue.Full:
            _quit(smtp)

    def __call__(self, to: list[str], message: EmailMessage, delivery_id: str) -> None:
        s = self.settings
        # No header folding (RFC 5322 allows 998 characters): ids stay greppable.
        mime = MimeMessage(policy=UNFOLDED)
        mime["From"] = s.smtp_sender
        mime["To"] = ", ".join(to)
        mime["Subject"] = message.subject
        mime["Date"] = formatdate(localtime=False)
        mime["Message-ID"] = make_msgid(domain="conciliare.local")
        # Lets a reader (and the benchmark) tie a received message to its delivery.
        mime["X-Conciliare-Delivery"] = delivery_id
        mime.set_content(message.text)
        mime.add_alternative(message.html, subtype="html")
        pooled = self._pooled()
        if pooled is not None:
            try:
                pooled.send_message(mime)
            except (smtplib.SMTPServerDisconnected, ConnectionError):
                pooled.close()  # the server dropped it meanwhile: a new connection below
            except BaseException:
                pooled.close()
                raise
            else:
                self._release(pooled)
                return
        smtp = self._connect()
        try:
            smtp.send_message(mime)
        except BaseException:
            smtp.close()
            raise
        self._release(smtp)

    def _pooled(self) -> smtplib.SMTP | None:
        try:
            return self.pool.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        while True:
            try:
                _quit(self.pool.get_nowait())
            except queue.Empty:
                return


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


class WebhookPoster:
    """POSTs a signed body; anything but a 2xx answer is a failure to retry."""

    def __init__(self, settings: NotificationSettings) -> None:
        self.client = httpx.Client(timeout=settings.webhook_timeout_seconds, follow_redirects=False)

    def __call__(self, url: str, headers: dict[str, str], body: str) -> None:
        response = self.client.post(url, content=body.encode(), headers=headers)
        if not 200 <= response.status_code < 300:
            raise WebhookRefused(f"HTTP {response.status_code}")

    def close(self) -> None:
        self.client.close()
