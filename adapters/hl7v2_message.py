"""One HL7 v2 message, decoded and split, with typed access to fields and the Dutch data types.

Splitting uses python-hl7 (`hl7` on PyPI): it reads the separators from MSH-1/MSH-2, so ZorgDomein's `_`
repetition separator works. What it does not do we do around it: strip MLLP framing, accept \\n and \\r\\n as
segment terminators, pick the character set from MSH-18 before decoding (it takes one codec for the whole
message), and unescape (`unescape` below; its own logs and can raise on bad sequences). python-hl7 nests a
value only as deep as its separators go, so every read goes through `_leaf`, which treats a missing level as
the first/empty one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import hl7

from adapters.base import AdapterError, Problem
from adapters.dates import parse_hl7_ts
from adapters.encodings import decode_declared

MLLP_START, MLLP_END = b"\x0b", b"\x1c\r"
DEFAULT_ENCODING_CHARS = "^~\\&"


def strip_framing(data: bytes) -> bytes:
    """Remove MLLP start/end blocks, a UTF-8 BOM and surrounding blank lines."""
    body = data.strip(b"\x0b\x1c\r\n \t")
    return body[3:] if body.startswith(b"\xef\xbb\xbf") else body


def declared_charset(data: bytes) -> str | None:
    """MSH-18 (first repetition), read from the raw bytes before we know how to decode them."""
    first = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r", 1)[0].decode("latin-1")
    if not first.startswith("MSH") or len(first) < 8:
        return None
    fields = first.split(first[3])
    if len(fields) < 18 or not fields[17]:
        return None
    repetition = fields[1][1] if len(fields[1]) > 1 else "~"
    component = fields[1][0] if fields[1] else "^"
    return fields[17].split(repetition)[0].split(component)[0].strip() or None


@dataclass(frozen=True)
class PersonLocation:
    """HL7 PL: point of care (ward) ^ room ^ bed ^ facility ^ status ^ type ^ building ^ floor"""

    ward: str
    room: str
    bed: str
    facility: str
    building: str

    @property
    def bed_label(self) -> str:
        """How staff name the bed: room-bed ("K12-1"), or whichever of the two is present."""
        return f"{self.room}-{self.bed}" if self.room and self.bed else self.bed or self.room

    @property
    def is_empty(self) -> bool:
        return not (self.ward or self.bed_label)


class V2Message:
    """A parsed message; fields are addressed the HL7 way: `get("PID", 3, rep=1, comp=4)` is PID-3[2].4."""

    def __init__(self, data: bytes) -> None:
        self.problems: list[Problem] = []
        text = self._decode(strip_framing(data))
        segments = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s.strip()]
        if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 8:
            raise AdapterError("not an HL7 v2 message: it must start with an MSH segment", location="MSH")
        if any(s.startswith(("FHS", "BHS")) for s in segments) or sum(s.startswith("MSH") for s in segments) > 1:
            raise AdapterError("HL7 batches are not supported: send one message per call", code="not-supported")
        try:
            self._msg: Any = hl7.parse("\r".join(segments))
        except Exception as exc:  # python-hl7 raises assorted errors on malformed input
            raise AdapterError(f"HL7 v2 message cannot be parsed: {exc}", location="MSH") from exc
        self.field_separator = segments[0][3]
        self.encoding_chars = segments[0][4:].split(self.field_separator, 1)[0] or DEFAULT_ENCODING_CHARS
        self.escape = (self.encoding_chars + DEFAULT_ENCODING_CHARS[len(self.encoding_chars) :])[2]

    def _decode(self, data: bytes) -> str:
        """Decode per MSH-18; an unknown or wrong label falls back to UTF-8/latin-1 with a warning."""
        label = declared_charset(data)
        text, codec, honoured = decode_declared(data, label)
        if not honoured:
            self.problems.append(
                Problem("warning", f"MSH-18 {label!r} does not match the bytes; read as {codec}", "MSH-18")
            )
        return text

    # --- field access -------------------------------------------------------------------------------------
    def segments(self, name: str) -> list[Any]:
        """All segments with this id, in message order."""
        return [s for s in self._msg if str(s[0]) == name]

    def segment(self, name: str) -> Any | None:
        """The first segment with this id, or None."""
        found = self.segments(name)
        return found[0] if found else None

    def get(self, seg: Any | str | None, field: int, rep: int = 0, comp: int = 1, sub: int = 1) -> str:
        """Unescaped leaf value; "" when anything along the path is absent. comp/sub are 1-based as in HL7."""
        segment = self.segment(seg) if isinstance(seg, str) else seg
        if segment is None or field >= len(segment):
            return ""
        if str(segment[0]) == "MSH" and field <= 2:
            return self.field_separator if field == 1 else self.encoding_chars
        return self._unescape(_leaf(segment[field], (rep, comp - 1, sub - 1))).strip()

    def text(self, seg: Any, field: int, rep: int = 0) -> str:
        """A whole repetition as text (FT/TX/ST with unescaped line breaks as \\n)."""
        if seg is None or field >= len(seg):
            return ""
        value = seg[field]
        if isinstance(value, str) or not len(value) or isinstance(value[0], str):
            raw = str(value) if rep == 0 else ""
        else:
            raw = str(value[rep]) if rep < len(value) else ""
        return self._unescape(raw).strip()

    def repetitions(self, seg: Any | None, field: int) -> int:
        """How many repetitions a field has (0 when empty)."""
        if seg is None or field >= len(seg) or not str(seg[field]):
            return 0
        value = seg[field]
        return 1 if isinstance(value, str) or not len(value) or isinstance(value[0], str) else len(value)

    def _unescape(self, value: str) -> str:
        if self.escape not in value:
            return value
        text, bad = unescape(value, self.field_separator, self.encoding_chars)
        if bad:
            self.problems.append(Problem("warning", f"unknown escape sequence(s) {', '.join(bad)} dropped", None))
        return text

    # --- header ---------------------------------------------------------------------------------------------
    @property
    def message_code(self) -> str:
        return self.get("MSH", 9, comp=1)

    @property
    def trigger(self) -> str:
        return self.get("MSH", 9, comp=2) or self.get("EVN", 1)

    @property
    def kind(self) -> str:
        return f"{self.message_code}^{self.trigger}"

    @property
    def control_id(self) -> str | None:
        return self.get("MSH", 10) or None

    @property
    def version(self) -> str:
        return self.get("MSH", 12)

    def timestamp(self, seg: Any | str | None, field: int, comp: int = 1) -> tuple[datetime, str] | None:
        """A TS/DTM field as (datetime, FHIR dateTime); unparseable values become a warning, not a crash."""
        value = self.get(seg, field, comp=comp)
        if not value:
            return None
        try:
            return parse_hl7_ts(value)
        except ValueError:
            name = seg if isinstance(seg, str) else str(seg[0]) if seg is not None else "?"
            self.problems.append(Problem("warning", f"ignored unreadable timestamp {value!r}", f"{name}-{field}"))
            return None

    def event_time(self) -> datetime | None:
        """When it happened: EVN-6 (occurred), else EVN-2 (recorded), else MSH-7."""
        for seg, field in (("EVN", 6), ("EVN", 2), ("MSH", 7)):
            found = self.timestamp(seg, field)
            if found:
                return found[0]
        return None

    def location(self, seg: Any | str | None, field: int) -> PersonLocation:
        """A PL field (PV1-3, PV1-6, NPU-1)."""

        def part(n: int) -> str:
            return self.get(seg, field, comp=n)

        return PersonLocation(ward=part(1), room=part(2), bed=part(3), facility=part(4), building=part(7))


def _leaf(node: Any, path: tuple[int, ...]) -> str:
    """Walk field -> repetition -> component -> subcomponent, tolerating python-hl7's shallow nesting."""
    for index in path:
        if isinstance(node, str):
            return node if index == 0 else ""
        if index >= len(node):
            return ""
        node = node[index]
    while not isinstance(node, str):
        if not len(node):
            return ""
        node = node[0]
    return node


_FORMATTING = {
    ".br": "\n",
    ".sp": "\n",
    ".ce": "\n",
    ".fi": "",
    ".nf": "",
    ".in": "",
    ".ti": "",
    ".sk": " ",
    "H": "",
    "N": "",
}


def unescape(value: str, field_separator: str, encoding_chars: str) -> tuple[str, list[str]]:
    """HL7 escape sequences (2.10: \\F\\ \\S\\ \\T\\ \\R\\ \\E\\, \\Xhh..\\, \\.br\\ ...) -> (text, unknown ones).

    Our own rather than python-hl7's, which logs errors (with a stray traceback) on bad input and raises
    ValueError on `\\.spX\\`; an adapter turns bad input into a Problem, never a log line or a crash.
    """
    chars = (encoding_chars + DEFAULT_ENCODING_CHARS[len(encoding_chars) :])[:4]
    escape = chars[2]
    table = {"F": field_separator, "S": chars[0], "R": chars[1], "E": escape, "T": chars[3]}
    parts = value.split(escape)
    if len(parts) % 2 == 0:  # an unpaired escape character is data, not a sequence
        parts[-2:] = [parts[-2] + escape + parts[-1]]
    text, bad = [parts[0]], list[str]()
    for sequence, literal in zip(parts[1::2], parts[2::2], strict=True):
        text.append(_sequence(sequence, table, bad))
        text.append(literal)
    return "".join(text), bad


def _sequence(sequence: str, table: dict[str, str], bad: list[str]) -> str:
    if sequence in table:
        return table[sequence]
    if sequence[:3] in _FORMATTING or sequence in _FORMATTING:
        return _FORMATTING.get(sequence, _FORMATTING.get(sequence[:3], ""))
    if sequence.startswith("X") and len(sequence) % 2 == 1:
        try:
            return bytes.fromhex(sequence[1:]).decode("latin-1")
        except ValueError:
            pass
    bad.append(f"\\{sequence}\\")
    return ""
