"""MEDVRI (Edifact GP referral letter): envelope checks, release character, keyword triage, letter kept."""

from __future__ import annotations

import base64

import pytest
from adapter_cases import GP_MULDER, SAMPLES, resources

from adapters import medvri
from adapters.base import AdapterError
from adapters.edifact import tokenize

LETTER = (SAMPLES / "gp" / "medvri_verwijzing_elv.edi").read_bytes()
TRIAGE = {"system": "https://zorgnet-hub.nl/fhir/CodeSystem/triage", "code": "needs-triage"}


def with_text(*lines: str) -> bytes:
    """The sample letter with other TXT lines (UNT count adjusted)."""
    head, _, rest = LETTER.partition(b"TXT:1")
    tail = rest[rest.index(b"GGO+") :]
    txt = b"".join(f"TXT:{n}+{line}'\r\n".encode("latin-1") for n, line in enumerate(lines, start=1))
    return (head + txt + tail).replace(b"UNT+13+", f"UNT+{7 + len(lines)}+".encode())


def test_sample_letter_is_a_triage_flagged_referral_with_the_derived_product() -> None:
    result = medvri.translate(LETTER, GP_MULDER)
    request = resources(result.bundle, "ServiceRequest")[0]
    assert TRIAGE in request["meta"]["tag"]
    assert request["code"]["coding"][0]["code"] == "elv-hoog"
    assert "confidence high" in request["note"][0]["text"]
    assert request["priority"] == "urgent"
    assert request["authoredOn"] == "2026-03-09T13:10:00+01:00"
    assert result.message_id == "VRI0000871" and result.kind == "MEDVRI"


def test_letter_text_is_kept_verbatim_as_text_plain_document() -> None:
    document = resources(medvri.translate(LETTER, GP_MULDER).bundle, "DocumentReference")[0]
    attachment = document["content"][0]["attachment"]
    assert attachment["contentType"] == "text/plain; charset=utf-8"
    text = base64.b64decode(attachment["data"]).decode("utf-8")
    assert text.splitlines()[3] == "Gewenste opname: vandaag. Reanimatiebeleid: niet reanimeren (besproken"
    assert len(text.splitlines()) == 6


def test_patient_is_matched_by_bsn_with_conditional_create() -> None:
    entry = next(
        e for e in medvri.translate(LETTER, GP_MULDER).bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    assert entry["request"]["ifNoneExist"] == "identifier=http://fhir.nl/fhir/NamingSystem/bsn|999990019"
    assert entry["resource"]["gender"] == "female" and entry["resource"]["birthDate"] == "1938-04-12"


def test_release_character_keeps_separators_inside_text() -> None:
    [segment] = tokenize("TXT:1+Dat is ?'m niet?: 1?+1 ?? 2'")
    assert segment.text() == "Dat is 'm niet: 1+1 ? 2"
    assert segment.qualifier == "1"


def test_conflicting_products_in_a_letter_derive_nothing_and_say_so() -> None:
    request = resources(
        medvri.translate(with_text("Graag ELV laag complex, evt ELV hoog complex."), GP_MULDER).bundle, "ServiceRequest"
    )[0]
    assert "code" not in request
    assert TRIAGE in request["meta"]["tag"]
    assert "confidence low" in request["note"][0]["text"]


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ((b"UNT+13+", b"UNT+12+"), "UNT (segment 14)"),
        ((b"UNZ+1+", b"UNZ+2+"), "UNZ (segment 15)"),
        ((b"UNT+13+VRI0000871", b"UNT+13+VRI0000872"), "UNT (segment 14)"),
        ((b"BSN999990019", b"BSN999990018"), "PID (segment 5) element 5"),
    ],
)
def test_wrong_counts_references_or_bsn_reject_the_interchange(change: tuple[bytes, bytes], location: str) -> None:
    with pytest.raises(AdapterError) as raised:
        medvri.translate(LETTER.replace(*change), GP_MULDER)
    assert raised.value.location == location


def test_truncated_interchange_is_rejected() -> None:
    with pytest.raises(AdapterError):
        medvri.translate(LETTER[: LETTER.index(b"UNZ")], GP_MULDER)
    with pytest.raises(AdapterError):
        medvri.translate(LETTER[: LETTER.index(b"UNT") + 5], GP_MULDER)


def test_unoa_file_with_latin1_accents_is_read() -> None:
    result = medvri.translate(
        with_text(
            "Mevr. Hoekstra, opname Esdorp (Beilen), crisisopname gewenst.".replace("Mevr.", "Mevr. Zoë")
        ).replace(b"Zo\xc3\xab", b"Zo\xeb"),
        GP_MULDER,
    )
    document = resources(result.bundle, "DocumentReference")[0]
    assert "Zoë" in base64.b64decode(document["content"][0]["attachment"]["data"]).decode("utf-8")
    assert resources(result.bundle, "ServiceRequest")[0]["code"]["coding"][0]["code"] == "wlz-crisis"


def test_one_bad_message_of_several_is_an_error_problem_and_the_others_translate() -> None:
    start, end = LETTER.index(b"UNH+"), LETTER.index(b"UNZ+")
    message = LETTER[start:end]
    second = message.replace(b"VRI0000871", b"VRI0000872").replace(b"BSN999990019", b"BSN999990018")
    two = LETTER[:start] + message + second + LETTER[end:].replace(b"UNZ+1+", b"UNZ+2+")
    result = medvri.translate(two, GP_MULDER)
    assert len(resources(result.bundle, "ServiceRequest")) == 1
    [problem] = result.problems
    assert problem.severity == "error" and "VRI0000872" in problem.message
    assert result.message_id == "KV20260309131"  # the interchange reference when it carries several messages
