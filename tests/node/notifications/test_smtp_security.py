"""SMTP security and auth come from settings: STARTTLS or implicit TLS, with a login."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from node.infra.process import free_port
from node.resources import Resources
from tests.fixtures.smtp import _Collector
from tests.node.notifications.conftest import logged, mail_settings, request, run_sender, unique_address
from tests.node.webhooks.conftest import eventually

USER, PASSWORD = "mailer", "s3cret-pass"

# with implicit TLS aiosmtpd cannot tell the session is encrypted, so it warns about AUTH without TLS
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    folder: Path = tmp_path_factory.mktemp("smtp-tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok)


@pytest.fixture(params=["starttls", "tls"])
def secured(request: pytest.FixtureRequest, tls_context: ssl.SSLContext) -> Iterator[tuple[str, int, _Collector]]:
    collector = _Collector()
    port = free_port()
    if request.param == "starttls":
        controller = Controller(collector, hostname="127.0.0.1", port=port, tls_context=tls_context,
                                require_starttls=True, auth_required=True, authenticator=_authenticator)
    else:
        controller = Controller(collector, hostname="127.0.0.1", port=port, ssl_context=tls_context,
                                auth_required=True, authenticator=_authenticator, auth_require_tls=False)
    controller.start()
    yield request.param, port, collector
    controller.stop()


async def test_mail_goes_over_tls_with_a_login(resources: Resources, secured: tuple[str, int, _Collector]) -> None:
    security, port, collector = secured
    base = mail_settings(resources, _Port(port))  # type: ignore[arg-type]
    settings = base.model_copy(update={"smtp_security": security, "smtp_username": USER,
                                       "smtp_password": SecretStr(PASSWORD), "smtp_validate_certs": False})
    to = unique_address()
    await request(resources, "kyc.approved", to, {"businessName": "Secure Shop"})
    async with run_sender(resources, settings):
        async def sent() -> bool:
            return [r.status for r in await logged(resources, to)] == ["SENT"]
        await eventually(sent)
    assert [m["Subject"] for m in collector.messages if to in str(m["To"])] == ["Secure Shop is verified"]


async def test_a_wrong_password_is_retried_not_lost(resources: Resources, secured: tuple[str, int, _Collector]) -> None:
    security, port, _ = secured
    settings = mail_settings(resources, _Port(port)).model_copy(update={  # type: ignore[arg-type]
        "smtp_security": security, "smtp_username": USER, "smtp_password": SecretStr("wrong"),
        "smtp_validate_certs": False})
    to = unique_address()
    await request(resources, "kyc.approved", to, {"businessName": "Locked Shop"})
    async with run_sender(resources, settings):
        async def retrying() -> bool:
            return [r.status for r in await logged(resources, to)] == ["RETRYING"]
        await eventually(retrying)
    # leave it to a sender with the right settings
    good = settings.model_copy(update={"smtp_password": SecretStr(PASSWORD)})
    async with run_sender(resources, good):
        async def sent() -> bool:
            return [r.status for r in await logged(resources, to)] == ["SENT"]
        await eventually(sent)


class _Port:
    def __init__(self, port: int) -> None:
        self.port = port
