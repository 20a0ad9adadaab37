"""Notifications: e-mail from editable templates over SMTP.

Requests arrive on the bus (``email.requested`` from the accounts domain, and the
payment, withdrawal, settlement and subscription events, e-mailed to the
merchant's contact address when the merchant's preferences allow). Each becomes
one row of the notification log, rendered with the active version of its
template (Jinja2, sandboxed; an HTML and a text part) in the same transaction as
the bus message is consumed, so none is lost or sent twice by redelivery. The
mail sender of the worker role sends due rows over SMTP and retries on failure
with backoff; the ``Message-ID`` stays the same across retries.
"""
