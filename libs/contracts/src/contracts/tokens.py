"""Bearer tokens of connection points and of the desk's accounts: only their hash is stored,
and only the hash of a point's travels on `registry.points`."""

import hashlib
import secrets


def new_token(prefix: str = "pt_") -> str:
    """256 random bits, after a prefix that tells a point's token ("pt_") from an account's."""
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is safe here: nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()
