"""Turning source bytes into text when senders mislabel their character set (they often do).

Dutch sources declare ASCII/UNOA yet carry ë and é in latin-1 or Windows-1252, and spreadsheets arrive as
UTF-8 with a BOM or as Windows-1252. Strict UTF-8 first is safe: latin-1 text with accents is almost never
valid UTF-8.
"""

from __future__ import annotations

import codecs

_LABELS = {
    # HL7 v2 table 0211 (MSH-18) and Edifact syntax identifiers (UNB S001.1)
    "ASCII": None,
    "": None,
    "UNOA": None,
    "UNOB": None,
    "8859/1": "latin-1",
    "UNOC": "latin-1",
    "8859/15": "iso8859-15",
    "UNOD": "iso8859-2",
    "8859/2": "iso8859-2",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "UTF-8": "utf-8",
    "UNOW": "utf-8",
    "UNOY": "utf-8",
}


def codec_for_label(label: str | None) -> str | None:
    """Python codec for a declared charset label; None means "not declared or plain ASCII: be tolerant"."""
    key = (label or "").strip().upper()
    if key not in _LABELS:
        raise LookupError(key)
    return _LABELS[key]


def decode_tolerant(data: bytes, fallback: str = "latin-1") -> tuple[str, str]:
    """Decode as UTF-8 (BOM stripped) or, failing that, as `fallback`; returns (text, codec used)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode(fallback, errors="replace"), fallback


def decode_declared(data: bytes, label: str | None) -> tuple[str, str, bool]:
    """Decode per a declared label -> (text, codec, honoured); honoured=False means we fell back."""
    try:
        codec = codec_for_label(label)
    except LookupError:
        text, used = decode_tolerant(data)
        return text, used, False
    if codec is None:
        text, used = decode_tolerant(data)
        return text, used, True
    try:
        return data.decode(codec), codec, True
    except UnicodeDecodeError:
        text, used = decode_tolerant(data)
        return text, used, False
