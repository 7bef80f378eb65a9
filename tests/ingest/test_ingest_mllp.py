"""The MLLP listener over a real TCP socket: framing, one ACK per message, MSA codes, duplicate suppression."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from ingest_cases import BED_K12_1, bed, hl7, search, variant
from sqlalchemy import func, select

from adapters.hl7v2 import frame, unframe
from hub.config import Settings
from hub.ingest import hooks
from hub.ingest.mllp import MllpListener, configured_address, sending_system
from hub.store.schema import resource_versions, resources

A01 = hl7("adt_a01_opname.hl7")
A20 = hl7("adt_a20_bedstatus.hl7")


@pytest.fixture
async def listener(hunzehof: Any) -> AsyncIterator[MllpListener]:
    server = await MllpListener(hunzehof.runtime, "127.0.0.1", 0).start()
    try:
        yield server
    finally:
        await server.close()


async def exchange(listener: MllpListener, *writes: bytes, acks: int, pause: float = 0.0) -> list[list[str]]:
    """Send the byte chunks over one connection; return the MSA segments of `acks` ACKs as field lists."""
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    try:
        for chunk in writes:
            writer.write(chunk)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        buffer, payloads = b"", []
        while len(payloads) < acks:
            chunk = await asyncio.wait_for(reader.read(65536), timeout=20)
            assert chunk, "connection closed before every ACK arrived"
            found, buffer = unframe(buffer + chunk)
            payloads += found
    finally:
        writer.close()
        await writer.wait_closed()
    return [_msa(p) for p in payloads]


def _msa(ack: bytes) -> list[str]:
    segment = next(s for s in ack.decode("latin-1").split("\r") if s.startswith("MSA"))
    return segment.split("|")


async def test_two_frames_in_one_write_get_two_acks_in_order(listener: MllpListener, hunzehof: Any) -> None:
    acks = await exchange(listener, frame(A20) + frame(A01), acks=2)
    assert [(a[1], a[2]) for a in acks] == [("AA", "ZNZ-20260309-000417"), ("AA", "ZNZ-20260309-000512")]
    location = await bed(hunzehof, BED_K12_1)
    assert location["operationalStatus"]["code"] == "O"  # A01 (14:25) after A20 (08:15)
    provenance = await search(hunzehof, "Provenance", {"target": f"Location/{location['id']}"})
    assert {p["agent"][1]["who"]["display"] for p in provenance} == {"Zorgnet Hub ingest (mllp)"}


async def test_a_frame_split_over_reads_and_line_noise_are_handled(listener: MllpListener) -> None:
    framed = frame(A20)
    acks = await exchange(listener, b"\r\nnoise", framed[:40], framed[40:-1], framed[-1:], acks=1, pause=0.05)
    assert acks[0][1:3] == ["AA", "ZNZ-20260309-000417"]


async def test_broken_message_gets_ae_naming_the_field_and_stores_nothing(
    listener: MllpListener, hunzehof: Any
) -> None:
    broken = A01.replace(b"999990019", b"999990018")
    acks = await exchange(listener, frame(broken), acks=1)
    assert acks[0][1:3] == ["AE", "ZNZ-20260309-000512"]
    assert "11-proof" in acks[0][3] and "PID-3" in acks[0][3]
    stored = await hunzehof.scalar(
        select(func.count()).select_from(resources).where(resources.c.rid > hunzehof.baseline_rid)
    )
    assert stored == 0


async def test_unknown_sender_and_unsupported_event_and_garbage_get_ar(listener: MllpListener) -> None:
    stranger = A20.replace(b"|YSIS|ZNZ-ASSEN|", b"|OTHER|ELSEWHERE|")
    unsupported = variant(A01.replace(b"ADT^A01^ADT_A01", b"SIU^S12"), control_id="SIU-1")
    acks = await exchange(listener, frame(stranger) + frame(unsupported) + frame(b"hello"), acks=3)
    assert [a[1] for a in acks] == ["AR", "AR", "AR"]
    assert acks[0][2] == "ZNZ-20260309-000417" and "unknown sending system OTHER/ELSEWHERE" in acks[0][3]
    assert acks[1][2] == "SIU-1"


async def test_a_duplicate_is_acknowledged_aa_and_stored_once(listener: MllpListener, hunzehof: Any) -> None:
    first = await exchange(listener, frame(A01), acks=1)
    versions = await hunzehof.scalar(select(func.count()).select_from(resource_versions))
    again = await exchange(listener, frame(A01), acks=1)
    assert first[0][1] == again[0][1] == "AA"
    assert "duplicate" in again[0][3]
    assert await hunzehof.scalar(select(func.count()).select_from(resource_versions)) == versions


def test_listener_address_comes_from_settings_when_configured() -> None:
    class WithMllp(Settings):
        mllp_port: int | None = 2575
        mllp_host: str = "0.0.0.0"

    assert configured_address(Settings()) is None
    assert configured_address(WithMllp()) == ("0.0.0.0", 2575)
    assert sending_system(b"\x0bMSH|^~\\&|YSIS^1.2^ISO|ZNZ-ASSEN||") == ("YSIS", "ZNZ-ASSEN")
    assert sending_system(b"PID|1") is None


async def test_app_start_up_runs_the_listener_when_a_port_is_configured(hunzehof: Any) -> None:
    runtime = hunzehof.runtime
    original = runtime.settings
    runtime.settings = original.model_copy(update={"mllp_port": 0})
    try:
        await hooks.on_startup(runtime)
        started = runtime.extras[hooks.LISTENER]
        acks = await exchange(started, frame(A20), acks=1)
        assert acks[0][1] == "AA"
    finally:
        await hooks.on_shutdown(runtime)
        runtime.settings = original
    assert hooks.LISTENER not in runtime.extras
