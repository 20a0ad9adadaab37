"""Webhooks: ED25519-signed deliveries of bus events to merchants' endpoints.

The delivery promise is **at least once**. Every event a merchant's endpoint
subscribes to becomes one delivery row (unique on event id + endpoint) in the
same transaction that consumes the bus message, so nothing announced is lost.
A delivery is POSTed until the receiver answers 2xx or its attempts run out
(then it is EXHAUSTED: dead-lettered, listed, and replayable). A worker that
dies mid-request, a receiver that times out after acting, a replay: all can
make the receiver see a delivery again, but only ever as a repeat of the same
``webhook-id`` / ``X-Webhook-ID`` (the delivery id). Receivers deduplicate on
that id. Deliveries to one endpoint for one payment (one event key) are made
in event order: the next waits until the previous is delivered or exhausted.
One exception: when a worker dies holding bus messages it had fetched, those
come back only after the consumer's ack wait, so their webhooks can follow a
later one of the same payment. Payment webhooks carry the whole payment
(``status``, ``updatedAt``), so a receiver keeps the newest state it has seen.

Each request carries two signatures by the merchant's ED25519 key: the
original protocol's (``X-Webhook-Signature`` = base64 Ed25519 over the ASCII
millisecond timestamp followed by the body) and Standard Webhooks'
(``webhook-signature: v1a,<base64 Ed25519 over "id.timestamp.body">``, the
timestamp in seconds). The body is the exact stored compact JSON.
"""
