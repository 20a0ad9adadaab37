"""Authentication building blocks shared by merchants and admins: passwords, tokens,
TOTP, HMAC request signing, secrets at rest, principals and their permissions."""
