"""Who a fuzzed request claims to be: its Authorization header, set whatever was generated."""

from requests.structures import CaseInsensitiveDict

from tests.fault.fuzzing import AnyCase, Prepare


def presenting(token: str | None) -> Prepare:
    """Send the case with `Bearer token`, or with no Authorization header at all."""

    def prepare(case: AnyCase) -> None:
        headers = CaseInsensitiveDict(case.headers or {})
        headers.pop("Authorization", None)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        case.headers = headers

    return prepare
