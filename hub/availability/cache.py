"""The read side of the aggregate: a cache of aggregate rows and regional totals, fed after every commit.

Both caches keep an entry only if its `seq` is newer than the one held (compare-and-set), so two commits whose
after-commit callbacks run in the other order still leave the newer figures. `rows()`/`totals()` answer None
while the cache is cold (not loaded since start or since Redis lost it); callers then read the table.

Redis layout (production; prefix `zorgnet:avail:<database hash>` so hubs sharing a Redis never mix):
  <p>:org:<org_id>       hash  "<product>|<region>"          -> "<seq>|<row json>"   (one provider: one HGETALL)
  <p>:product:<code>     hash  "<org_id>|<region>"           -> "<seq>|<row json>"
  <p>:all                hash  "<org_id>|<product>|<region>" -> "<seq>|<row json>"
  <p>:totals             hash  "<region>|<product>"          -> "<seq>|<total json>"
  <p>:loaded             "1" once the table was loaded (absent -> cold)
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import orjson

Row = dict[str, Any]


def row_key(row: Row) -> tuple[str, str, str]:
    return (row["org_id"], row["product"], row["region"])


def total_key(total: Row) -> tuple[str, str]:
    return (total["region"], total["product"])


class AvailabilityCache(Protocol):
    publishes: bool  # True: `apply(..., publish=True)` also publishes the stored changes (Redis pub/sub)

    async def apply(self, rows: list[Row], totals: list[Row], *,
                    publish: bool = False) -> tuple[list[Row], list[Row]]: ...
    async def load(self, rows: list[Row], totals: list[Row]) -> None: ...
    async def rows(self, *, org_id: str | None = None, product: str | None = None) -> list[Row] | None: ...
    async def totals(self) -> list[Row] | None: ...
    async def clear(self) -> None: ...
    async def close(self) -> None: ...


class MemoryCache:
    """Embedded mode: one process, plain dicts with an index per provider and per product."""

    publishes = False

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, str], Row] = {}
        self._by_org: dict[str, set[tuple[str, str, str]]] = {}
        self._by_product: dict[str, set[tuple[str, str, str]]] = {}
        self._totals: dict[tuple[str, str], Row] = {}
        self.loaded = False

    async def apply(self, rows: list[Row], totals: list[Row], *,
                    publish: bool = False) -> tuple[list[Row], list[Row]]:
        applied_rows = [r for r in rows if self._put_row(r)]
        applied_totals = []
        for total in totals:
            held = self._totals.get(total_key(total))
            if held is None or held["seq"] < total["seq"]:
                self._totals[total_key(total)] = total
                applied_totals.append(total)
        return applied_rows, applied_totals

    def _put_row(self, row: Row) -> bool:
        key = row_key(row)
        held = self._rows.get(key)
        if held is not None and held["seq"] >= row["seq"]:
            return False
        self._rows[key] = row
        self._by_org.setdefault(row["org_id"], set()).add(key)
        self._by_product.setdefault(row["product"], set()).add(key)
        return True

    async def load(self, rows: list[Row], totals: list[Row]) -> None:
        await self.apply(rows, totals)
        self.loaded = True

    async def rows(self, *, org_id: str | None = None, product: str | None = None) -> list[Row] | None:
        if not self.loaded:
            return None
        if org_id is not None:
            keys = self._by_org.get(org_id, set())
            return [self._rows[k] for k in keys if product is None or k[1] == product]
        if product is not None:
            return [self._rows[k] for k in self._by_product.get(product, set())]
        return list(self._rows.values())

    async def totals(self) -> list[Row] | None:
        return list(self._totals.values()) if self.loaded else None

    async def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    async def close(self) -> None:
        return None


# Compare-and-set of several entries in one round trip, then (if ARGV[2] names a channel) one PUBLISH of what was
# stored. ARGV: prefix, channel, then the entries as one string: a line each, its fields separated by tabs — kind
# ("r" row / "t" total), org_id, product, region, seq, event json (orjson never writes a raw tab or newline; the
# key fields are codes and ids). One argument instead of six per entry: redis-py encodes every argument in Python,
# which cost more than the script. Returns the 1-based entry numbers that were newer and stored.
_APPLY = """
local p, channel = ARGV[1], ARGV[2]
local applied, events = {}, {}
local n = 0
for line in string.gmatch(ARGV[3], '[^\\n]+') do
  n = n + 1
  local kind, org, product, region, seq_text, payload =
    string.match(line, '^([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t(.*)$')
  local seq = tonumber(seq_text)
  local key, field
  if kind == 'r' then key, field = p .. ':all', org .. '|' .. product .. '|' .. region
  else key, field = p .. ':totals', region .. '|' .. product end
  local held = redis.call('HGET', key, field)
  local held_seq = held and tonumber(string.match(held, '^(%d+)|')) or -1
  if seq > held_seq then
    local value = seq_text .. '|' .. payload
    redis.call('HSET', key, field, value)
    if kind == 'r' then
      redis.call('HSET', p .. ':org:' .. org, product .. '|' .. region, value)
      redis.call('HSET', p .. ':product:' .. product, org .. '|' .. region, value)
    end
    table.insert(applied, n)
    table.insert(events, payload)
  end
end
if channel ~= '' and #events > 0 then
  redis.call('PUBLISH', channel, '[' .. table.concat(events, ',') .. ']')
end
return applied
"""
_SEPARATORS = str.maketrans("", "", "\t\n")


def redis_prefix(database_url: str, schema: str | None) -> str:
    digest = hashlib.sha1(f"{database_url}#{schema or ''}".encode()).hexdigest()[:12]
    return f"zorgnet:avail:{digest}"


def _parse(values: dict[str, str]) -> list[Row]:
    rows = [orjson.loads(value.split("|", 1)[1]) for value in values.values()]
    for row in rows:
        row.pop("type", None)  # stored as the event that announced it
    return rows


class RedisCache:
    """Production: shared by every API process and worker; reads are one round trip (pipeline); an update and
    its pub/sub message are one script call."""

    publishes = True

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.url, self.prefix = redis_url, prefix
        self.channel = f"{prefix}:changes"
        self._client: Any = None
        self._script: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis

            self._client = aioredis.Redis.from_url(self.url, decode_responses=True)
            self._script = self._client.register_script(_APPLY)
        return self._client

    async def apply(self, rows: list[Row], totals: list[Row], *,
                    publish: bool = False) -> tuple[list[Row], list[Row]]:
        entries = [("r", r) for r in rows] + [("t", t) for t in totals]
        if not entries:
            return [], []
        lines = []
        for kind, item in entries:
            event = orjson.dumps({"type": "row" if kind == "r" else "total", **item}).decode()
            keys = f"{kind}\t{item.get('org_id', '')}\t{item['product']}\t{item['region']}\t{item['seq']}"
            if keys.count("\t") != 4 or "\n" in keys:  # a separator inside a value (never in codes and ids)
                keys = "\t".join(str(v).translate(_SEPARATORS)
                                 for v in (kind, item.get("org_id", ""), item["product"], item["region"], item["seq"]))
            lines.append(f"{keys}\t{event}")
        _ = self.client
        argv = [self.prefix, self.channel if publish else "", "\n".join(lines)]
        numbers = set(await self._script(keys=[], args=argv))
        applied = [entries[n - 1] for n in sorted(numbers)]
        return [i for k, i in applied if k == "r"], [i for k, i in applied if k == "t"]

    async def load(self, rows: list[Row], totals: list[Row]) -> None:
        for start in range(0, max(len(rows), len(totals)) or 1, 500):
            await self.apply(rows[start:start + 500], totals[start:start + 500])
        await self.client.set(f"{self.prefix}:loaded", "1")

    async def _read(self, key: str) -> list[Row] | None:
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(f"{self.prefix}:loaded")
        pipe.hgetall(key)
        loaded, values = await pipe.execute()
        return _parse(values) if loaded else None

    async def rows(self, *, org_id: str | None = None, product: str | None = None) -> list[Row] | None:
        if org_id is not None:
            found = await self._read(f"{self.prefix}:org:{org_id}")
            return found if found is None or product is None else [r for r in found if r["product"] == product]
        if product is not None:
            return await self._read(f"{self.prefix}:product:{product}")
        return await self._read(f"{self.prefix}:all")

    async def totals(self) -> list[Row] | None:
        return await self._read(f"{self.prefix}:totals")

    async def clear(self) -> None:
        keys = [key async for key in self.client.scan_iter(match=f"{self.prefix}:*", count=500)]
        for start in range(0, len(keys), 500):
            await self.client.delete(*keys[start:start + 500])

    async def mark_cold(self) -> None:
        await self.client.delete(f"{self.prefix}:loaded")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
