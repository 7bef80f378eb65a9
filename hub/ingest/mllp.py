"""MLLP listener: HL7 v2 over TCP for hospital and nursing-home interface engines.

Framing is 0x0B <message> 0x1C 0x0D (`adapters.hl7v2.frame/unframe`); a read may hold several frames or part
of one. Messages of one connection are handled strictly in order, each answered with one original-mode ACK:
MSA-1 `AA` stored (also for a duplicate, which changes nothing), `AE` the message or what it would store is
invalid (adapter or validation error: fix and resend), `AR` rejected (not HL7, unknown sending system,
unsupported message type, or a sender not allowed to write what the message carries); MSA-2 is the message's
MSH-10. The sending system (MSH-3/MSH-4) must be mapped to a configured organisation
(`PUT /ingest/config/{sender}` with `hl7Sources`); it then acts with that organisation's role and settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from adapters import hl7v2
from hub.errors import Forbidden, HubError
from hub.ingest import senders, service
from hub.ingest.errors import InputRejected, StoreRefused

if TYPE_CHECKING:
    from hub.runtime import Runtime

log = logging.getLogger("hub.ingest.mllp")
READ_SIZE = 64 * 1024
REJECTED_CODES = frozenset({"not-supported"})  # adapter codes answered AR (the rest AE)


class MllpListener:
    """An asyncio TCP server feeding `service.ingest`; `port` is the bound port (pass 0 to pick a free one)."""

    def __init__(self, runtime: Runtime, host: str = "127.0.0.1", port: int = 2575) -> None:
        self.runtime, self.host, self.requested_port = runtime, host, port
        self.max_frame = runtime.settings.max_body_bytes
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self.server is None or not self.server.sockets:
            return self.requested_port
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> MllpListener:
        # reuse_port: several API worker processes can share the port (the kernel spreads connections)
        self.server = await asyncio.start_server(
            self._connection, self.host, self.requested_port, reuse_port=hasattr(socket, "SO_REUSEPORT")
        )
        log.info("MLLP listener on %s:%s", self.host, self.port)
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else None
        buffer = b""
        try:
            while chunk := await reader.read(READ_SIZE):
                buffer += chunk
                messages, buffer = hl7v2.unframe(buffer)
                for payload in messages:
                    writer.write(hl7v2.frame(await self.answer(payload, address)))
                    await writer.drain()
                if len(buffer) > self.max_frame:
                    log.warning("MLLP %s: frame above %s bytes without an end block; closing", address, self.max_frame)
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("MLLP %s: connection lost", address)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def answer(self, payload: bytes, client_address: str | None = None) -> bytes:
        """Store one message and build its ACK (never raises: every outcome is an AA/AE/AR)."""
        now = datetime.now(UTC)
        source = sending_system(payload)
        if source is None:
            return hl7v2.ack(payload, "AR", "not an HL7 v2 message (no MSH segment)", at=now)
        try:
            async with self.runtime.engine.connect() as conn:
                sender = await senders.for_hl7_source(conn, *source)
            if sender is None:
                log.warning("MLLP %s: unknown sending system %s/%s refused", client_address, *source)
                return hl7v2.ack(payload, "AR", f"unknown sending system {source[0]}/{source[1]}", at=now)
            ctx = sender.context(
                subject=f"mllp:{source[0]}/{source[1]}", reason="HL7 v2 over MLLP", client_address=client_address
            )
            delivery = service.Delivery("hl7v2", payload, ctx, "mllp", now, settings=sender)
            result = await service.ingest(self.runtime, delivery)
        except HubError as err:
            return hl7v2.ack(payload, _code_for(err), err.diagnostics[:200], at=now)
        except Exception:  # the sender gets an AE; the trace stays in our log
            log.exception("MLLP %s: message from %s/%s failed", client_address, *source)
            return hl7v2.ack(payload, "AE", "internal error; the message was not stored", at=now)
        text = result.summary if not result.warnings else f"{result.summary} ({result.warnings} warning(s))"
        return hl7v2.ack(payload, "AA", text[:200], at=now)


def _code_for(err: HubError) -> hl7v2.AckCode:
    cause = err.cause if isinstance(err, StoreRefused) else err
    if isinstance(cause, Forbidden):
        return "AR"
    if isinstance(err, InputRejected) and err.adapter_code in REJECTED_CODES:
        return "AR"
    return "AE"


def sending_system(payload: bytes) -> tuple[str, str] | None:
    """(MSH-3, MSH-4) namespace ids, read with the message's own separators; None if there is no MSH."""
    text = payload.lstrip(b"\x0b\r\n \t")
    text = text[3:] if text.startswith(b"\xef\xbb\xbf") else text
    first = text.replace(b"\n", b"\r").split(b"\r", 1)[0].decode("latin-1")
    if not first.startswith("MSH") or len(first) < 8:
        return None
    fields = first.split(first[3])
    component = fields[1][:1] or "^"

    def namespace(n: int) -> str:
        return fields[n - 1].split(component)[0].strip() if len(fields) >= n else ""

    return namespace(3), namespace(4)


def configured_address(settings: Any) -> tuple[str, int] | None:
    """(host, port) when the deployment asks for a listener (`HUB_MLLP_PORT`), else None."""
    port = getattr(settings, "mllp_port", None)
    if port is None:
        return None
    return str(getattr(settings, "mllp_host", "127.0.0.1")), int(port)
