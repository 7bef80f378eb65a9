"""A small Edifact tokenizer and envelope check for the Dutch national subset (MEDVRI, MEDEUR, MEDLAB).

Why not pydifact: it rejects the Dutch segment tags with a qualifier (`DET:1`, `TXT:3`: "Invalid segment
name") and validates against UN/EDIFACT directories these messages are not part of. The syntax itself is tiny:
separators `:` (component) `+` (element) `'` (segment), release character `?`, optionally overridden by a UNA
service string. Line breaks after a segment terminator are layout, not data, and are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.base import AdapterError
from adapters.encodings import decode_declared


@dataclass(frozen=True)
class Segment:
    """One segment: `elements[0]` is the tag with its qualifier (["DET", "1"]), data elements follow."""

    position: int  # 1-based position in the interchange, for Problem locations
    elements: tuple[tuple[str, ...], ...]

    @property
    def tag(self) -> str:
        return self.elements[0][0]

    @property
    def qualifier(self) -> str:
        return self.elements[0][1] if len(self.elements[0]) > 1 else ""

    @property
    def where(self) -> str:
        return f"{self.tag} (segment {self.position})"

    def value(self, element: int, component: int = 0) -> str:
        """Data element `element` (1-based, after the tag), component `component` (0-based); "" if absent."""
        if element >= len(self.elements) or component >= len(self.elements[element]):
            return ""
        return self.elements[element][component].strip()

    def text(self, start: int = 1) -> str:
        """Free text from element `start` on, with unescaped `:`/`+` put back (TXT lines contain them)."""
        return "+".join(":".join(parts) for parts in self.elements[start:]).strip()


@dataclass(frozen=True)
class Message:
    """UNH .. UNT of one message."""

    reference: str
    message_type: str
    segments: tuple[Segment, ...]

    def first(self, tag: str, qualifier: str | None = None) -> Segment | None:
        return next((s for s in self.segments if s.tag == tag and qualifier in (None, s.qualifier)), None)

    def all(self, tag: str) -> list[Segment]:
        return [s for s in self.segments if s.tag == tag]


@dataclass(frozen=True)
class Interchange:
    header: Segment  # UNB
    messages: tuple[Message, ...]

    @property
    def sender(self) -> str:
        return self.header.value(2)

    @property
    def reference(self) -> str:
        return self.header.value(5)


def decode(data: bytes) -> str:
    """Decode per the UNB syntax identifier; UNOA/UNOB files carrying latin-1 accents are accepted."""
    start = data.find(b"UNB")
    label = data[start + 4 : start + 8].decode("latin-1") if start >= 0 else None
    return decode_declared(data, label)[0]


def tokenize(text: str) -> list[Segment]:
    """Split into segments/elements/components honouring the release character; raises on a truncated file."""
    component, element, release, terminator = ":", "+", "?", "'"
    if text.startswith("UNA") and len(text) >= 9:
        component, element, release, terminator = text[3], text[4], text[6], text[8]
        text = text[9:]
    segments: list[Segment] = []
    elements: list[tuple[str, ...]] = []
    parts: list[str] = []
    buffer: list[str] = []
    chars = iter(text)
    for ch in chars:
        if ch == release:
            buffer.append(next(chars, ""))
        elif ch in "\r\n":
            continue
        elif ch == component:
            parts.append("".join(buffer))
            buffer = []
        elif ch in (element, terminator):
            elements.append((*parts, "".join(buffer)))
            parts, buffer = [], []
            if ch == terminator:
                segments.append(Segment(len(segments) + 1, tuple(elements)))
                elements = []
        else:
            buffer.append(ch)
    if "".join(buffer).strip() or elements or parts:
        raise AdapterError(
            "the last segment has no terminator (truncated file?)", location=f"segment {len(segments) + 1}"
        )
    return segments


def parse(data: bytes) -> Interchange:
    """Tokenize and check the envelope: UNB first, each UNH..UNT complete and counted, UNZ count and refs."""
    segments = tokenize(decode(data))
    if not segments or segments[0].tag != "UNB":
        raise AdapterError("not an Edifact interchange: it must start with UNB (or UNA)", location="segment 1")
    header, trailer = segments[0], segments[-1]
    if trailer.tag != "UNZ":
        raise AdapterError("interchange has no UNZ trailer (truncated file?)", location=trailer.where)
    messages = _messages(segments[1:-1])
    if trailer.value(1) != str(len(messages)):
        raise AdapterError(
            f"UNZ says {trailer.value(1)} message(s), the interchange has {len(messages)}",
            location=trailer.where,
        )
    if trailer.value(2) != header.value(5):
        raise AdapterError(
            f"UNZ reference {trailer.value(2)!r} does not match UNB {header.value(5)!r}",
            location=trailer.where,
        )
    return Interchange(header, tuple(messages))


def _messages(body: list[Segment]) -> list[Message]:
    """Group UNH..UNT and check each UNT count (segments UNH..UNT inclusive) and reference."""
    messages: list[Message] = []
    current: list[Segment] = []
    for segment in body:
        if segment.tag == "UNH":
            if current:
                raise AdapterError("UNH before the previous message's UNT", location=segment.where)
            current = [segment]
        elif not current:
            raise AdapterError(f"{segment.tag} outside a message (UNH..UNT)", location=segment.where)
        else:
            current.append(segment)
            if segment.tag == "UNT":
                messages.append(_checked_message(current))
                current = []
    if current:
        raise AdapterError("message has no UNT trailer (truncated file?)", location=current[-1].where)
    return messages


def _checked_message(segments: list[Segment]) -> Message:
    head, tail = segments[0], segments[-1]
    if tail.value(1) != str(len(segments)):
        raise AdapterError(
            f"UNT says {tail.value(1)} segments, message {head.value(1)!r} has {len(segments)}",
            location=tail.where,
        )
    if tail.value(2) != head.value(1):
        raise AdapterError(f"UNT reference {tail.value(2)!r} does not match UNH {head.value(1)!r}", location=tail.where)
    return Message(head.value(1), head.value(2), tuple(segments))
