"""Bearer tokens of connection points: what travels on `registry.points` is only their hash."""

import hashlib
import secrets


def new_token() -> str:
    return "pt_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is safe here: nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()
