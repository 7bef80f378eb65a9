"""HL7 v2.4/2.5 (Dutch conventions) -> FHIR, plus the pure pieces of the hub's MLLP listener.

`translate` accepts one message, framed or not, with \\r, \\n or \\r\\n segment terminators, in the character
set MSH-18 declares. ADT A01/A02/A03/A08/A11/A12/A13/A20 update beds, Encounters and Patients (hl7v2_adt);
ORU^R01 and ORM^O01 from ZorgDomein become referrals (hl7v2_referral). `ack`, `frame` and `unframe` let the
listener answer in the sender's own separators and version without this package doing any I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from adapters.base import AdapterError, Problem, SourceMeta, Translation
from adapters.bundle import TransactionBuilder
from adapters.dates import AMSTERDAM
from adapters.hl7v2_adt import translate_adt
from adapters.hl7v2_message import DEFAULT_ENCODING_CHARS, V2Message, declared_charset, strip_framing
from adapters.hl7v2_referral import translate_referral

FORMAT = "hl7v2"
MEDIA_TYPES = ("application/hl7-v2", "application/hl7-v2+er7", "x-application/hl7-v2+er7")
DESCRIPTION = "HL7 v2.4/2.5 NL: ADT A01-A13/A20 (beds, stays) and ZorgDomein ORU^R01/ORM^O01 referrals"

START_BLOCK, END_BLOCK, CARRIAGE_RETURN = 0x0B, 0x1C, 0x0D
AckCode = Literal["AA", "AE", "AR"]


def translate(source: bytes, meta: SourceMeta) -> Translation:
    """One HL7 v2 message -> transaction Bundle; unsupported message types are AdapterError(not-supported)."""
    msg = V2Message(source)
    builder = TransactionBuilder()
    problems: list[Problem] = msg.problems  # one list: parsing and mapping findings in the order they occur
    code = msg.message_code
    if code == "ADT":
        translate_adt(msg, meta, builder, problems)
    elif code in ("ORU", "ORM"):
        translate_referral(msg, meta, builder, problems)
    else:
        raise AdapterError(f"message type {msg.kind} is not supported", location="MSH-9", code="not-supported")
    event_time = msg.event_time()
    return Translation(
        bundle=builder.bundle(),
        problems=list(dict.fromkeys(problems)),
        message_id=msg.control_id,
        event_time=event_time,
        kind=msg.kind,
    )


def frame(payload: bytes) -> bytes:
    """Wrap one message in MLLP framing: 0x0B payload 0x1C 0x0D."""
    return bytes([START_BLOCK]) + payload + bytes([END_BLOCK, CARRIAGE_RETURN])


def unframe(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Split a TCP read buffer into complete MLLP payloads and the unfinished rest (for the next read).

    Bytes before a start block are line noise and dropped; an end block split over two reads stays in rest.
    """
    messages: list[bytes] = []
    position = 0
    while True:
        start = buffer.find(bytes([START_BLOCK]), position)
        if start < 0:
            return messages, b""
        end = buffer.find(bytes([END_BLOCK, CARRIAGE_RETURN]), start + 1)
        if end < 0:
            return messages, buffer[start:]
        messages.append(buffer[start + 1 : end])
        position = end + 2


def ack(message_bytes: bytes, code: AckCode, text: str | None = None, *, at: datetime | None = None) -> bytes:
    """Original-mode ACK: MSA-1 = code, MSA-2 = the message's MSH-10, ERR when code is AE/AR.

    Uses the sender's separators, version and charset. `at` fills MSH-7 (the listener passes its clock; we do
    not read one). Works on garbage input too, so a listener can always answer AR.
    """
    body = strip_framing(message_bytes)
    first = body.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r", 1)[0].decode("latin-1")
    fs, enc = ("|", DEFAULT_ENCODING_CHARS)
    fields: list[str] = []
    if first.startswith("MSH") and len(first) > 4:
        fs = first[3]
        fields = first.split(fs)
        enc = fields[1] or DEFAULT_ENCODING_CHARS

    def field(n: int) -> str:  # MSH-n of the original message
        return fields[n - 1] if 0 < n - 1 < len(fields) else ""

    component = enc[0]
    trigger = field(9).split(component)[1] if component in field(9) else ""
    version = field(12).split(component)[0] or "2.5"
    control_id = field(10).split(component)[0]
    stamp = at.astimezone(AMSTERDAM).strftime("%Y%m%d%H%M%S%z") if at else ""
    msh = [
        "MSH",
        enc,
        field(5),
        field(6),
        field(3),
        field(4),
        stamp,
        "",
        component.join(("ACK", trigger, "ACK")) if trigger else "ACK",
        f"ACK{control_id}"[:199],
        field(11) or "P",
        version,
    ]
    if field(18):
        msh += ["", "", "", "", "", field(18)]
    msa = ["MSA", code, control_id]
    if text:
        msa.append(_escape(text, fs, enc))
    segments = [fs.join(msh), fs.join(msa)]
    if code != "AA":
        segments.append(_err_segment(code, text, fs, enc, version))
    charset = declared_charset(body) if first.startswith("MSH") else None
    codec = "utf-8" if (charset or "").upper() in ("UNICODE UTF-8", "UNICODE", "UTF-8") else "latin-1"
    return ("\r".join(segments) + "\r").encode(codec, errors="replace")


def _err_segment(code: AckCode, text: str | None, fs: str, enc: str, version: str) -> str:
    """ERR with HL7 table 0357 code 207 (application error) or 200 (unsupported); 2.4 uses ERR-1 (ELD)."""
    component, subcomponent = enc[0], (enc[3] if len(enc) > 3 else "&")
    error, label = ("200", "Unsupported message type") if code == "AR" else ("207", "Application internal error")
    if version.startswith(("2.1", "2.2", "2.3", "2.4")):
        eld = component * 3 + subcomponent.join((error, label, "HL70357"))
        return fs.join(("ERR", eld))
    user_text = _escape(text, fs, enc) if text else ""
    return fs.join(("ERR", "", "", component.join((error, label, "HL70357")), "E", "", "", "", user_text))


def _escape(text: str, fs: str, enc: str) -> str:
    """Escape separators in free text (\\F\\ \\S\\ \\R\\ \\T\\ \\E\\) and flatten line breaks."""
    component, repetition, escape, subcomponent = (list(enc) + ["^", "~", "\\", "&"][len(enc) :])[:4]
    table = {escape: "E", fs: "F", component: "S", repetition: "R", subcomponent: "T"}
    flat = " ".join(text.split())
    return "".join(f"{escape}{table[ch]}{escape}" if ch in table else ch for ch in flat)
