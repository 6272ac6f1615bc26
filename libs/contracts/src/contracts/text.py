"""Text as operators type it and spreadsheets mangle it: normalised and searchable, the same
way in registration's point search and in reporting's."""

import unicodedata


def nfc(text: str) -> str:
    """One spelling per word: Vietnamese typed as NFD (decomposed) is stored as NFC."""
    return unicodedata.normalize("NFC", text)


def has_control_characters(text: str) -> bool:
    return any(unicodedata.category(char) == "Cc" for char in text)


def folded(text: str) -> str:
    """Lower case without diacritics, so "dong tien" finds "Đông Tiến"."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(char for char in decomposed if unicodedata.category(char) != "Mn")
    return " ".join(bare.casefold().split())


def search_text(code: str, name: str, host: str) -> str:
    """What a search for a point looks in: its code, name and host, folded."""
    return folded(f"{code} {name} {host}")


def search_words(query: str | None) -> list[str]:
    """The words of a search, folded: a point matches when its search text holds every one."""
    return folded(query or "").split()
