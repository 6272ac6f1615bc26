"""Text as operators type it and spreadsheets mangle it: normalised and searchable."""

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
