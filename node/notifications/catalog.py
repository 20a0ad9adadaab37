"""The e-mails the node sends: their context keys, preference category and a sample
context (for previews). Default texts live in ``templates/<name>.{subject.txt,txt,html}``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.notifications.errors import TemplateNotFound

TEMPLATE_DIR = Path(__file__).parent / "templates"

# preference categories a merchant may turn off; account and security mail is always sent
OPTIONAL_CATEGORIES = ("payments", "withdrawals", "settlements", "subscriptions")
ACCOUNT = "account"


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    description: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    category: str = ACCOUNT
    sample: dict[str, Any] = field(default_factory=dict)


_PAYMENT = {
    "id": "9b2f8f1e-6c1d-4f7e-9a51-0c4bb5b0a001", "paymentNo": "PAY-20261124-0a1b2c3d",
    "merchantTradeNo": "order-1001", "amount": "7500", "currency": "LKR", "amountUsdt": "25",
    "status": "PAID", "txHash": "0x5d2c...e91a", "paidAt": "2026-11-24T10:00:00Z",
}
_LINK = "https://portal.example/accept?token=sample"

SPECS: dict[str, TemplateSpec] = {spec.name: spec for spec in [
    TemplateSpec("merchant.welcome", "Welcome after registration", ("businessName",), ("name", "portalUrl"),
                 sample={"businessName": "Lanka Tea Co", "name": "Nimal", "portalUrl": "https://portal.example"}),
    TemplateSpec("email.verification", "Confirm the e-mail address", ("verifyUrl",),
                 ("name", "token", "expiresInHours"),
                 sample={"name": "Nimal", "verifyUrl": _LINK, "expiresInHours": 48}),
    TemplateSpec("password.reset", "Password reset link", ("resetUrl",), ("name", "token", "expiresInMinutes"),
                 sample={"name": "Nimal", "resetUrl": _LINK, "expiresInMinutes": 30}),
    TemplateSpec("login.new_device", "Sign-in from a new device", (), ("name", "ip", "userAgent", "at"),
                 sample={"name": "Nimal", "ip": "203.0.113.7", "userAgent": "Firefox", "at": "2026-11-24T10:00:00Z"}),
    TemplateSpec("payout_address.changed", "The payout address is changing", ("address", "effectiveAt"),
                 ("businessName", "previousAddress"),
                 sample={"businessName": "Lanka Tea Co", "address": "0x8f3c5e0d4b2a91c7e6f0a3b2c1d4e5f6a7b821aa",
                         "previousAddress": "0x1111111111111111111111111111111111111111",
                         "effectiveAt": "2026-11-25T10:00:00Z"}),
    TemplateSpec("kyc.submitted", "KYC documents received", ("businessName",),
                 ("kycStatus", "instantAccessCapUsdt"),
                 sample={"businessName": "Lanka Tea Co", "kycStatus": "INSTANT_ACCESS", "instantAccessCapUsdt": 5000}),
    TemplateSpec("kyc.admin_review_needed", "To admins: a KYC review is waiting", ("businessName",),
                 ("merchantId", "kycStatus", "adminUrl"),
                 sample={"businessName": "Lanka Tea Co", "merchantId": "0b8c...", "kycStatus": "UNDER_REVIEW",
                         "adminUrl": "https://admin.example/merchants/0b8c"}),
    TemplateSpec("kyc.approved", "KYC approved", ("businessName",), ("portalUrl",),
                 sample={"businessName": "Lanka Tea Co", "portalUrl": "https://portal.example"}),
    TemplateSpec("kyc.rejected", "KYC rejected", ("businessName",), ("reason",),
                 sample={"businessName": "Lanka Tea Co", "reason": "The registration certificate is unreadable"}),
    TemplateSpec("merchant.frozen", "Account frozen", ("businessName",), ("reason",),
                 sample={"businessName": "Lanka Tea Co", "reason": "Unusual activity"}),
    TemplateSpec("merchant.unfrozen", "Account unfrozen", ("businessName",), ("reason",),
                 sample={"businessName": "Lanka Tea Co", "reason": "Review completed"}),
    TemplateSpec("merchant.terminated", "Account closed", ("businessName",), ("reason",),
                 sample={"businessName": "Lanka Tea Co", "reason": "At the merchant's request"}),
    TemplateSpec("director.verification", "To a director: verify your identity", ("verifyUrl",),
                 ("directorName", "businessName", "token", "expiresInDays"),
                 sample={"directorName": "Kamala Perera", "businessName": "Lanka Tea Co", "verifyUrl": _LINK,
                         "expiresInDays": 7}),
    TemplateSpec("director.verified", "A director completed verification", (), ("directorName", "businessName"),
                 sample={"directorName": "Kamala Perera", "businessName": "Lanka Tea Co"}),
    TemplateSpec("admin.invite", "Invitation to the admin portal (a single-use link, never a password)",
                 ("acceptUrl",), ("name", "role", "token", "expiresInDays"),
                 sample={"name": "Ayesha", "role": "ADMIN", "acceptUrl": _LINK, "expiresInDays": 7}),
    TemplateSpec("user.invite", "Invitation to a merchant account (a single-use link, never a password)",
                 ("acceptUrl",), ("name", "businessName", "role", "invitedBy", "token", "expiresInDays"),
                 sample={"name": "Ruwan", "businessName": "Lanka Tea Co", "role": "MANAGER", "invitedBy": "Nimal",
                         "acceptUrl": _LINK, "expiresInDays": 7}),
    TemplateSpec("payment.paid", "A payment is paid", ("payment",), ("businessName",), "payments",
                 sample={"businessName": "Lanka Tea Co", "payment": _PAYMENT}),
    TemplateSpec("payment.expired", "A payment expired unpaid", ("payment",), ("businessName",), "payments",
                 sample={"businessName": "Lanka Tea Co", "payment": {**_PAYMENT, "status": "EXPIRED", "txHash": ""}}),
    TemplateSpec("withdrawal.completed", "A withdrawal is completed", ("withdrawal",), ("businessName",),
                 "withdrawals", sample={"businessName": "Lanka Tea Co", "withdrawal": {
                     "id": "wd_01", "amount": "120", "currency": "USDT", "toAddress": "0x8f3c...21aa",
                     "txHash": "0x77ab...90fe"}}),
    TemplateSpec("settlement.initiated", "An LKR settlement started", ("settlement",), ("businessName",),
                 "settlements", sample={"businessName": "Lanka Tea Co", "settlement": {
                     "reference": "STL-2026-11-24-001", "fiatAmount": "97500", "fiatCurrency": "LKR", "rate": "325"}}),
    TemplateSpec("settlement.completed", "An LKR settlement was paid out", ("settlement",), ("businessName",),
                 "settlements", sample={"businessName": "Lanka Tea Co", "settlement": {
                     "reference": "STL-2026-11-24-001", "fiatAmount": "97500", "fiatCurrency": "LKR",
                     "bankReference": "BOC-884213"}}),
    TemplateSpec("subscription.created", "A customer subscribed", ("subscription",), ("businessName",),
                 "subscriptions", sample={"businessName": "Lanka Tea Co", "subscription": {
                     "id": "sub_01", "planName": "Monthly tea box", "email": "buyer@example.com", "amount": "15",
                     "currency": "USDT"}}),
    TemplateSpec("subscription.charged", "A subscription was charged", ("subscription",), ("businessName",),
                 "subscriptions", sample={"businessName": "Lanka Tea Co", "subscription": {
                     "id": "sub_01", "planName": "Monthly tea box", "amount": "15", "currency": "USDT",
                     "txHash": "0x11aa...ff02"}}),
    TemplateSpec("subscription.charge_failed", "A subscription charge failed", ("subscription",),
                 ("businessName",), "subscriptions", sample={"businessName": "Lanka Tea Co", "subscription": {
                     "id": "sub_01", "planName": "Monthly tea box", "reason": "allowance too low"}}),
    TemplateSpec("subscription.cancelled", "A subscription was cancelled", ("subscription",), ("businessName",),
                 "subscriptions", sample={"businessName": "Lanka Tea Co", "subscription": {
                     "id": "sub_01", "planName": "Monthly tea box"}}),
]}

# bus events e-mailed to the merchant: event type -> (template, context key for the event's data)
EVENT_TEMPLATES: dict[str, tuple[str, str]] = {
    name: (name, name.split(".", 1)[0])
    for name, spec in SPECS.items() if spec.category in OPTIONAL_CATEGORIES
}


@dataclass(frozen=True)
class TemplateText:
    subject: str
    body_text: str
    body_html: str


def default_text(name: str) -> TemplateText:
    """The shipped default of a template, from its files. Only catalogued names are read:
    the name comes from a URL, and an unknown one is a 404, not a missing file."""
    if name not in SPECS:
        raise TemplateNotFound(name)
    return TemplateText(
        subject=(TEMPLATE_DIR / f"{name}.subject.txt").read_text().strip(),
        body_text=(TEMPLATE_DIR / f"{name}.txt").read_text(),
        body_html=(TEMPLATE_DIR / f"{name}.html").read_text(),
    )
