"""HL7 v2 adapter: bed events, visits, Dutch conventions, decoding, ACK and MLLP framing."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from adapter_cases import (
    HUNZEHOF,
    INPUTS,
    SAMPLES,
    ZORGDOMEIN,
    entry_for,
    meta_with,
    resource_of,
    resources,
)

from adapters import hl7v2, medvri
from adapters.base import AdapterError, SourceMeta, Translation

A01 = (SAMPLES / "hl7v2" / "adt_a01_opname.hl7").read_bytes()
A03 = (SAMPLES / "hl7v2" / "adt_a03_ontslag.hl7").read_bytes()
A20 = (SAMPLES / "hl7v2" / "adt_a20_bedstatus.hl7").read_bytes()
ORU = (SAMPLES / "gp" / "zorgdomein_oru_r01_elv.hl7").read_bytes()
ORM = (INPUTS / "zorgdomein_orm_o01_underscore.hl7").read_bytes()
K12_1 = "73730001/ELV-ZW/K12-1"
K14_2 = "73730001/ELV-ZW/K14-2"
VISIT = "73730001/V2026-0000917"


def run(data: bytes, meta: SourceMeta = HUNZEHOF) -> Translation:
    return hl7v2.translate(data, meta)


def bed(result: Translation, value: str = K12_1) -> dict[str, Any]:
    return resource_of(result.bundle, "Location", value)


def encounter(result: Translation) -> dict[str, Any]:
    return resource_of(result.bundle, "Encounter", VISIT)


def input_bytes(name: str) -> bytes:
    return (INPUTS / name).read_bytes()


# --- bed status and visits -------------------------------------------------------------------------------
def test_a20_sets_bed_k12_1_to_housekeeping_and_carries_no_patient() -> None:
    result = run(A20)
    entry = entry_for(result.bundle, "Location", K12_1)
    assert entry["resource"]["operationalStatus"] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0116",
        "code": "H",
        "display": "Housekeeping",
    }
    assert entry["request"] == {
        "method": "PUT",
        "url": "Location?identifier=https://zorgnet-hub.nl/fhir/NamingSystem/bed|" + K12_1,
    }
    assert not resources(result.bundle, "Patient")
    assert result.kind == "ADT^A20" and result.message_id == "ZNZ-20260309-000417"


def test_a01_occupies_the_bed_and_opens_the_encounter_with_the_configured_product() -> None:
    result = run(A01)
    assert bed(result)["operationalStatus"]["code"] == "O"
    assert bed(result)["extension"][0]["valueCoding"]["code"] == "elv-hoog"
    stay = encounter(result)
    assert stay["status"] == "in-progress"
    assert stay["location"][0]["status"] == "active"
    assert stay["period"] == {"start": "2026-03-09T14:25:00+01:00"}
    assert result.event_time is not None and result.event_time.isoformat() == "2026-03-09T14:25:00+01:00"


def test_a03_completes_the_encounter_and_sends_the_bed_to_housekeeping() -> None:
    result = run(A03)
    stay = encounter(result)
    assert stay["status"] == "finished"
    assert stay["period"]["end"] == "2026-03-22T11:00:00+01:00"
    assert stay["location"][0]["status"] == "completed"
    assert stay["hospitalization"]["dischargeDisposition"]["coding"][0]["code"] == "01"
    assert bed(result)["operationalStatus"]["code"] == "H"


def test_vacated_bed_status_is_configurable() -> None:
    result = run(A03, meta_with(HUNZEHOF, config={"ward_products": {}, "vacated_bed_status": "U"}))
    assert bed(result)["operationalStatus"]["code"] == "U"


def test_a02_moves_the_patient_from_the_old_to_the_new_bed() -> None:
    result = run(input_bytes("adt_a02_overplaatsing.hl7"))
    assert bed(result, K12_1)["operationalStatus"]["code"] == "H"
    assert bed(result, K14_2)["operationalStatus"]["code"] == "O"
    old, new = encounter(result)["location"]
    assert old["status"] == "completed" and old["period"]["end"] == "2026-03-12T10:15:00+01:00"
    assert new["status"] == "active" and new["period"] == {"start": "2026-03-12T10:15:00+01:00"}


def test_a11_cancel_admit_frees_the_bed_and_cancels_the_encounter() -> None:
    result = run(input_bytes("adt_a11_annulering_opname.hl7"))
    assert bed(result)["operationalStatus"]["code"] == "U"
    assert encounter(result)["status"] == "cancelled"
    assert "location" not in encounter(result)


def test_a12_cancel_transfer_puts_the_patient_back_and_frees_the_cancelled_bed() -> None:
    result = run(input_bytes("adt_a12_annulering_overplaatsing.hl7"))
    assert bed(result, K12_1)["operationalStatus"]["code"] == "O"
    assert bed(result, K14_2)["operationalStatus"]["code"] == "U"
    assert [loc["status"] for loc in encounter(result)["location"]] == ["active"]


def test_a13_cancel_discharge_reopens_the_encounter_and_reoccupies_the_bed() -> None:
    result = run(input_bytes("adt_a13_annulering_ontslag.hl7"))
    assert encounter(result)["status"] == "in-progress"
    assert "end" not in encounter(result)["period"]
    assert bed(result)["operationalStatus"]["code"] == "O"


def test_a08_replaces_the_patient_and_touches_nothing_else() -> None:
    result = run(input_bytes("adt_a08_wijziging_utf8.hl7"))
    patient_entry = entry_for(result.bundle, "Patient", "999990019")
    assert patient_entry["request"]["method"] == "PUT"
    assert not resources(result.bundle, "Location") and not resources(result.bundle, "Encounter")
    assert patient_entry["resource"]["name"][0]["given"][0] == "Geertruida Anneliës"  # MSH-18 UNICODE UTF-8
    assert patient_entry["resource"]["address"][0]["city"] == "Rolde"


def test_death_in_pid_29_30_is_recorded_with_a_conditional_update() -> None:
    marital_status = b"|||W\r"  # PID-16; PID-29 (death time) and PID-30 (indicator) follow 13 and 14 bars later
    died = A03.replace(marital_status, b"|||W" + b"|" * 13 + b"20260322103000+0100|Y\r")
    patient_entry = entry_for(run(died).bundle, "Patient", "999990019")
    assert patient_entry["resource"]["deceasedDateTime"] == "2026-03-22T10:30:00+01:00"
    assert patient_entry["request"]["method"] == "PUT"
    flag_only = A03.replace(marital_status, b"|||W" + b"|" * 14 + b"Y\r")
    assert entry_for(run(flag_only).bundle, "Patient", "999990019")["resource"]["deceasedBoolean"] is True


# --- care product mapping -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        ({"ELV-ZW": "elv-hoog", "ELV-ZW/K12-1": "elv-pall"}, "elv-pall"),
        ({"K12": "elv-laag"}, "elv-laag"),
        ({"K12-1": "grz", "ELV-ZW": "elv-hoog"}, "grz"),
    ],
)
def test_the_most_specific_ward_products_key_wins(mapping: dict[str, str], expected: str) -> None:
    result = run(A20, meta_with(HUNZEHOF, config={"ward_products": mapping}))
    assert bed(result)["extension"][0]["valueCoding"]["code"] == expected


def test_bed_without_a_product_mapping_gets_a_warning_not_a_guess() -> None:
    result = run(A20, meta_with(HUNZEHOF, config={}))
    assert "extension" not in bed(result)
    assert [p.location for p in result.problems if p.severity == "warning"] == ["NPU-1"]


def test_bed_events_need_the_sender_to_scope_bed_identifiers() -> None:
    with pytest.raises(AdapterError) as raised:
        run(A20, SourceMeta(HUNZEHOF.received_at))
    assert raised.value.code == "business-rule"


# --- identifiers, separators, encodings -------------------------------------------------------------------
def test_invalid_bsn_rejects_the_message_with_its_position() -> None:
    with pytest.raises(AdapterError) as raised:
        run(A01.replace(b"999990019^^^NLMINBIZA", b"999990018^^^NLMINBIZA"))
    assert raised.value.location == "PID-3[2]"
    assert "11-proof" in raised.value.message


def test_underscore_repetition_separator_from_msh2_is_honoured() -> None:
    result = run(ORM, ZORGDOMEIN)
    patient = resources(result.bundle, "Patient")[0]
    assert patient["identifier"] == [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999990032"}]
    assert {"system": "email", "value": "h.zwiers@example.nl"} in patient["telecom"]
    assert {"system": "phone", "value": "0592-111222", "use": "home"} in patient["telecom"]


@pytest.mark.parametrize("terminator", [b"\n", b"\r\n"])
def test_lf_and_crlf_segment_terminators_and_mllp_framing_give_the_same_bundle(terminator: bytes) -> None:
    expected = run(A01).bundle
    assert run(A01.replace(b"\r", terminator)).bundle == expected
    assert run(hl7v2.frame(A01)).bundle == expected


def test_msh18_latin1_is_decoded_as_latin1() -> None:
    accented = A01.replace(b"^Geertruida^", "^Geërtruida^".encode("latin-1"))
    patient = entry_for(run(accented).bundle, "Patient", "999990019")["resource"]
    assert patient["name"][0]["given"][0] == "Geërtruida"


def test_wrongly_declared_charset_falls_back_with_a_warning() -> None:
    utf8_in_latin1_message = A01.replace(b"8859/1", b"UNICODE UTF-8").replace(
        b"^Geertruida^", "^Geë".encode("latin-1") + b"^"
    )
    result = run(utf8_in_latin1_message)
    assert any(p.location == "MSH-18" for p in result.problems)
    assert entry_for(result.bundle, "Patient", "999990019")["resource"]["name"][0]["given"][0] == "Geë"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"hello world", "invalid"),
        (A01.replace(b"ADT^A01^ADT_A01", b"SIU^S12"), "not-supported"),
        (A01.replace(b"ADT^A01^ADT_A01", b"ADT^A04^ADT_A01").replace(b"EVN|A01", b"EVN|A04"), "not-supported"),
        (A01 + A01, "not-supported"),
    ],
)
def test_unusable_or_unsupported_input_is_an_adapter_error(data: bytes, code: str) -> None:
    with pytest.raises(AdapterError) as raised:
        run(data)
    assert raised.value.code == code


# --- ZorgDomein referral --------------------------------------------------------------------------------
def test_zorgdomein_oru_becomes_a_coded_referral_with_the_pdf_letter() -> None:
    result = run(ORU, ZORGDOMEIN)
    request_entry = entry_for(result.bundle, "ServiceRequest", "ZorgDomein/ZD260309000417")
    request = request_entry["resource"]
    assert [c["code"] for c in request["code"]["coding"]] == ["elv-hoog", "ELVHC"]
    assert request["status"] == "active" and request["intent"] == "order" and request["priority"] == "urgent"
    assert request["authoredOn"] == "2026-03-09T13:10:00+01:00"
    assert request["reasonCode"][0]["text"].splitlines()[1] == "Graag ELV hoog complex, regio Assen."
    requester = next(e for e in result.bundle["entry"] if e["fullUrl"] == request["requester"]["reference"])
    assert requester["resource"]["identifier"][0]["value"] == "01054321"
    document = resources(result.bundle, "DocumentReference")[0]
    attachment = document["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf"
    assert base64.b64decode(attachment["data"]).startswith(b"%PDF-1.4")
    assert document["context"]["related"] == [{"reference": request_entry["fullUrl"]}]


def test_the_same_referral_by_zorgdomein_and_medvri_shares_patient_and_match_key() -> None:
    by_zorgdomein = run(ORU, ZORGDOMEIN).bundle
    letter = (SAMPLES / "gp" / "medvri_verwijzing_elv.edi").read_bytes()
    by_medvri = medvri.translate(letter, ZORGDOMEIN).bundle

    def match_key(bundle: dict[str, Any]) -> str:
        request = resources(bundle, "ServiceRequest")[0]
        return str(next(i["value"] for i in request["identifier"] if i["system"].endswith("referral-match-key")))

    assert match_key(by_zorgdomein) == match_key(by_medvri) == "999990019/2026-03-09/01054321"
    assert (
        entry_for(by_zorgdomein, "Patient", "999990019")["fullUrl"]
        == entry_for(by_medvri, "Patient", "999990019")["fullUrl"]
    )


def test_unmapped_zorgdomein_product_is_flagged_for_triage_and_config_can_map_it() -> None:
    unknown = ORU.replace(b"ELVHC^ELV hoog complex^ZORGDOMEIN", b"ZV123^Zorgvraag onbekend^ZORGDOMEIN")
    request = resources(run(unknown, ZORGDOMEIN).bundle, "ServiceRequest")[0]
    assert request["meta"]["tag"] == [
        {"system": "https://zorgnet-hub.nl/fhir/CodeSystem/triage", "code": "needs-triage"}
    ]
    assert [c["code"] for c in request["code"]["coding"]] == ["ZV123"]
    mapped = run(unknown, meta_with(ZORGDOMEIN, config={"zorgdomein_products": {"ZV123": "wlz-crisis"}}))
    assert resources(mapped.bundle, "ServiceRequest")[0]["code"]["coding"][0]["code"] == "wlz-crisis"


def test_orm_with_practice_gives_a_practitioner_role_requester() -> None:
    bundle = run(ORM, ZORGDOMEIN).bundle
    request = resources(bundle, "ServiceRequest")[0]
    role = entry_for(bundle, "PractitionerRole", "01099999/01077777")
    assert request["requester"]["reference"] == role["fullUrl"]
    assert request["priority"] == "routine"
    assert "trap naar slaapkamer & geen mantelzorg" in request["reasonCode"][0]["text"]  # \T\ unescaped


def test_broken_base64_letter_is_an_error_problem_and_the_referral_still_translates() -> None:
    broken = ORU.replace(b"^Base64^JVBERi0x", b"^Base64^!!!!JVBERi0x")
    result = run(broken, ZORGDOMEIN)
    assert not resources(result.bundle, "DocumentReference")
    assert resources(result.bundle, "ServiceRequest")
    assert [p.severity for p in result.problems] == ["error"]


# --- ACK and MLLP -------------------------------------------------------------------------------------------
def test_ack_accepts_with_msa_aa_and_the_original_control_id() -> None:
    segments = hl7v2.ack(A01, "AA").decode("latin-1").split("\r")
    msh = segments[0].split("|")
    assert msh[2:6] == ["ZORGNETHUB", "COORD-DRENTHE", "YSIS", "ZNZ-ASSEN"]
    assert msh[8] == "ACK^A01^ACK" and msh[11] == "2.5" and msh[17] == "8859/1"
    assert segments[1] == "MSA|AA|ZNZ-20260309-000512"
    assert len([s for s in segments if s]) == 2


def test_ack_error_escapes_text_adds_err_and_keeps_the_senders_separators() -> None:
    text = hl7v2.ack(ORM, "AE", "PID-3 | BSN ^ onbekend").decode("utf-8").split("\r")
    assert text[0].startswith("MSH|^_\\&|")
    assert text[1] == "MSA|AE|ZD260310000088|PID-3 \\F\\ BSN \\S\\ onbekend"
    assert text[2] == "ERR|^^^207&Application internal error&HL70357"  # v2.4: ERR-1 (ELD)
    v25 = hl7v2.ack(A01, "AR", "unsupported").decode("latin-1").split("\r")
    assert v25[2] == "ERR|||200^Unsupported message type^HL70357|E||||unsupported"


def test_ack_fills_msh7_only_from_the_given_time_and_answers_garbage() -> None:
    from datetime import UTC, datetime

    stamped = hl7v2.ack(A01, "AA", at=datetime(2026, 3, 9, 13, 30, 11, tzinfo=UTC)).split(b"\r")[0]
    assert stamped.split(b"|")[6] == b"20260309143011+0100"
    assert hl7v2.ack(b"\x00garbage", "AR").split(b"\r")[1] == b"MSA|AR|"


def test_mllp_unframe_handles_split_and_multiple_frames() -> None:
    stream = b"noise" + hl7v2.frame(b"MSH|one") + hl7v2.frame(b"MSH|two") + hl7v2.frame(b"MSH|three")
    cut_in_end_block = stream.index(b"\x1c", stream.index(b"three")) + 1
    messages, rest = hl7v2.unframe(stream[:cut_in_end_block])
    assert messages == [b"MSH|one", b"MSH|two"]
    more, rest = hl7v2.unframe(rest + stream[cut_in_end_block:])
    assert more == [b"MSH|three"] and rest == b""
    first_half, rest = hl7v2.unframe(hl7v2.frame(b"MSH|x")[:4])
    assert first_half == [] and rest == b"\x0bMSH"


def test_frame_roundtrip_of_a_real_message() -> None:
    messages, rest = hl7v2.unframe(hl7v2.frame(A01))
    assert messages == [A01] and rest == b""


def test_escape_sequences_are_unescaped_and_unknown_ones_reported() -> None:
    from adapters.hl7v2_message import unescape

    assert unescape(r"a\F\b\S\c\T\d\R\e\E\f\X41\\.br\g", "|", "^~\\&") == ("a|b^c&d~e\\fA\ng", [])
    assert unescape(r"x\Zlocal\y \ lone", "|", "^~\\&") == ("xy \\ lone", ["\\Zlocal\\"])
