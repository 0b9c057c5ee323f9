"""Redis layout and scripts: the only module that knows keys and Lua.

One tuning job lives under one hash tag, `hpo:{<account>:<tuning job>}`, so
that all of its keys share a Redis Cluster slot:

- `...:def`     hash: the objective's `metric` name and `type`
- `...:rec`     hash: training job name -> compact record (see `record`)
- `...:n:<c>`   sorted set per status code c, every score 0: names in byte order
- `...:s:<c>`   sorted set per status code c: names scored by final objective
                value; only jobs that have one

All-status orders merge the five per-status sets inside the read script, which
keeps each training job at two sorted-set memberships.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

STATUS_COUNT = 5

# Shared by the scripts that compare training job names: `bytes_before(a, b)`.
_BYTES_BEFORE = """
local byte = string.byte

-- Lua compares strings by the server's locale; names must sort by bytes.
local function bytes_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = byte(a, i), byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
"""


def _script(text: str) -> str:
    """A script with the shared helpers put in where it names them."""
    return text.replace("--@include bytes_before\n", _BYTES_BEFORE)


_LIST_PAGE = """
-- Reads one page of a tuning job's training jobs after an optional cursor.
-- KEYS[1]   the tuning job's definition hash (fields metric and type)
-- KEYS[2]   the records hash: training job name -> record
-- KEYS[3..] the sets to read, one per status wanted: the name-ordered sets
--           when ARGV[1] is "name", the scored sets when it is "score"
-- ARGV[1]   "name" or "score": the order
-- ARGV[2]   "1" for descending, "0" for ascending
-- ARGV[3]   how many training jobs to return at most
-- ARGV[4]   the cursor's training job name, "" to start at the beginning
-- ARGV[5]   the cursor's score, in score order with a cursor
-- Returns {} when the tuning job does not exist, otherwise
-- {metric, type, name1, record1, name2, record2, ...} in the order asked.
local definition = redis.call('HMGET', KEYS[1], 'metric', 'type')
if not definition[1] then return {} end

local by_score = ARGV[1] == 'score'
local descending = ARGV[2] == '1'
local want = tonumber(ARGV[3])
local after = ARGV[4]
local score_text = ARGV[5]
local after_score = tonumber(score_text)
--@include bytes_before

-- How many members of a scored set sort before the cursor (by score, then
-- name), counting the cursor's own member as well when `inclusive`.
local function rank_of_cursor(key, inclusive)
  local own = redis.call('ZSCORE', key, after)
  if own and tonumber(own) == after_score then
    local rank = redis.call('ZRANK', key, after)
    if inclusive then return rank + 1 end
    return rank
  end
  local low = redis.call('ZCOUNT', key, '-inf', '(' .. score_text)
  local high = low + redis.call('ZCOUNT', key, score_text, score_text)
  -- Equal scores sort by name: bisect them for the first one past the cursor.
  while low < high do
    local middle = math.floor((low + high) / 2)
    local member = redis.call('ZRANGE', key, middle, middle)[1]
    if bytes_before(after, member) then high = middle else low = middle + 1 end
  end
  return low
end

-- Each set wanted is a source read in chunks from where the page starts.
-- With one source, one read of `want` names is the page. With several, each
-- first reads about its share of the page (by its size), plus two, and
-- reads more only when the merge uses up what it read: far fewer members
-- are read, and converted into Lua, than `want` from every set.
local sources = {}
local total = 0
for i = 3, #KEYS do
  local key = KEYS[i]
  local card = redis.call('ZCARD', key)
  local source = {key = key, names = {}, scores = {}, at = 1, done = false}
  if card > 0 and by_score then
    if descending then
      -- Reads go by reverse rank, from just below the cursor.
      local stop = card
      if after ~= '' then stop = rank_of_cursor(key, false) end
      source.position, card = card - stop, stop
    else
      source.position = 0
      if after ~= '' then source.position = rank_of_cursor(key, true) end
      card = card - source.position
    end
  elseif card > 0 then
    source.bound = descending and '+' or '-'
    if after ~= '' then source.bound = '(' .. after end
  end
  if card > 0 then
    source.card = card
    total = total + card
    sources[#sources + 1] = source
  end
end

local merging = #sources > 1
local function fill(source, count)
  local key, names, scores = source.key, {}, {}
  if by_score then
    local first_rank, last_rank = source.position, source.position + count - 1
    local command = descending and 'ZREVRANGE' or 'ZRANGE'
    if merging then
      local reply = redis.call(command, key, first_rank, last_rank, 'WITHSCORES')
      for i = 1, #reply, 2 do
        names[#names + 1] = reply[i]
        scores[#scores + 1] = tonumber(reply[i + 1])
      end
    else
      names = redis.call(command, key, first_rank, last_rank)
    end
    source.position = source.position + #names
  else
    if descending then
      names = redis.call('ZREVRANGEBYLEX', key, source.bound, '-',
                         'LIMIT', 0, count)
    else
      names = redis.call('ZRANGEBYLEX', key, source.bound, '+', 'LIMIT', 0, count)
    end
    if #names > 0 then source.bound = '(' .. names[#names] end
  end
  source.names, source.scores, source.at = names, scores, 1
  source.done = #names < count
end

-- Whether candidate (name a, score sa) comes before (b, sb) in the page order.
local function first(a, sa, b, sb)
  if by_score and sa ~= sb then
    if descending then return sa > sb end
    return sa < sb
  end
  if descending then return bytes_before(b, a) end
  return bytes_before(a, b)
end

local page = {}
if #sources == 1 then
  fill(sources[1], want)
  page = sources[1].names
elseif merging then
  for _, source in ipairs(sources) do
    fill(source, math.min(want, math.floor(want * source.card / total) + 2))
  end
  while #page < want do
    local best, best_name, best_score = nil, nil, nil
    for _, source in ipairs(sources) do
      if source.at > #source.names and not source.done then
        fill(source, want - #page)
      end
      local name = source.names[source.at]
      if name then
        local score = source.scores[source.at]
        if best == nil or first(name, score, best_name, best_score) then
          best, best_name, best_score = source, name, score
        end
      end
    end
    if best == nil then break end
    page[#page + 1] = best_name
    best.at = best.at + 1
  end
end

local out = {definition[1], definition[2]}
if #page == 0 then return out end
local records = redis.call('HMGET', KEYS[2], unpack(page))
for i = 1, #page do
  out[#out + 1] = page[i]
  out[#out + 1] = records[i]
end
return out
"""

_PUT_TRAINING_JOBS = """
-- Upserts a batch of training jobs, moving each between its sets.
-- KEYS[1]      the tuning job's definition hash
-- KEYS[2]      the records hash
-- KEYS[3..7]   the name-ordered sets of status codes 0..4
-- KEYS[8..12]  the scored sets of status codes 0..4
-- ARGV         triples: name, record (its first byte is the status code),
--              score ("" when the job has no final objective value); each
--              name at most once
-- Returns -1 when the tuning job does not exist, else the jobs written.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local byte = string.byte
local count = #ARGV / 3

-- Read the old records at once, take each job out of the sets it leaves,
-- then write records and memberships with one call per key (a call per job
-- costs more than the insertions themselves).
local CHUNK = 1000
local function each_chunk(list, step, call)
  for first = 1, #list, CHUNK * step do
    call(unpack(list, first, math.min(first + CHUNK * step - 1, #list)))
  end
end

local names = {}
for i = 1, #ARGV, 3 do names[#names + 1] = ARGV[i] end
local olds = {}
for first = 1, #names, CHUNK do
  local last = math.min(first + CHUNK - 1, #names)
  local part = redis.call('HMGET', KEYS[2], unpack(names, first, last))
  for i = 1, #part do olds[first + i - 1] = part[i] end
end

local fields, named, scored = {}, {}, {}
for code = 1, 5 do named[code], scored[code] = {}, {} end
for j = 1, count do
  local i = 3 * j - 2
  local name, record, score = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local code = byte(record, 1) - 47
  local old = olds[j]
  if old then
    local was = byte(old, 1) - 47
    if was ~= code then redis.call('ZREM', KEYS[2 + was], name) end
    if was ~= code or score == '' then redis.call('ZREM', KEYS[7 + was], name) end
  end
  fields[#fields + 1] = name
  fields[#fields + 1] = record
  local into = named[code]
  into[#into + 1] = 0
  into[#into + 1] = name
  if score ~= '' then
    into = scored[code]
    into[#into + 1] = score
    into[#into + 1] = name
  end
end

each_chunk(fields, 2, function(...) redis.call('HSET', KEYS[2], ...) end)
for code = 1, 5 do
  each_chunk(named[code], 2, function(...)
    redis.call('ZADD', KEYS[2 + code], ...)
  end)
  each_chunk(scored[code], 2, function(...)
    redis.call('ZADD', KEYS[7 + code], ...)
  end)
end
return count
"""

_CREATE_TUNING_JOB = """
-- Creates a tuning job unless it exists.
-- KEYS[1]  the tuning job's definition hash
-- ARGV[1]  the objective metric's name; ARGV[2] the objective type
-- Returns 1 when created, 0 when it exists with this very objective,
-- -1 when it exists with another.
local current = redis.call('HMGET', KEYS[1], 'metric', 'type')
if current[1] then
  if current[1] == ARGV[1] and current[2] == ARGV[2] then return 0 end
  return -1
end
redis.call('HSET', KEYS[1], 'metric', ARGV[1], 'type', ARGV[2])
return 1
"""

_DELETE_TUNING_JOB = """
-- Removes a tuning job and all of its training jobs.
-- KEYS[1]   the tuning job's definition hash; KEYS[2..] its other keys
-- Returns 0 when the tuning job does not exist, 1 once it is removed.
-- UNLINK frees the sets' memory off the main thread, however large they are.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('UNLINK', unpack(KEYS))
return 1
"""


class NotFound(Exception):
    """The tuning job does not exist."""


class Conflict(Exception):
    """The tuning job exists with another objective."""


@dataclass(frozen=True)
class TrainingJob:
    """A training job as the storage writes it; status is a status code."""

    name: str
    status: int
    hyperparameters: dict[str, str]
    retried_attempt: int = 0
    value: float | None = None


@dataclass(frozen=True)
class Page:
    """The training jobs of one read, in order, with the tuning job's objective."""

    metric_name: str
    objective_type: str
    rows: list[tuple[bytes, bytes]]


def record(job: TrainingJob) -> bytes:
    """The compact stored form: `status|retried|value|hyperparameters JSON`.

    The value is the shortest text that reads back as the same float, empty
    when the job has none; the hyperparameters are already in wire form.
    """
    value = b"" if job.value is None else repr(job.value).encode()
    head = b"%d|%d|%s|" % (job.status, job.retried_attempt, value)
    return head + orjson.dumps(job.hyperparameters)


def split_record(stored: bytes) -> list[bytes]:
    """[status code digit, retried, value text, hyperparameters JSON]."""
    return stored.split(b"|", 3)


def _tag(account: str, tuning_job: str) -> str:
    return f"hpo:{{{account}:{tuning_job}}}"


def _keys(account: str, tuning_job: str) -> list[str]:
    """Definition, records, the name-ordered sets, then the scored sets."""
    tag = _tag(account, tuning_job)
    named = [f"{tag}:n:{code}" for code in range(STATUS_COUNT)]
    scored = [f"{tag}:s:{code}" for code in range(STATUS_COUNT)]
    return [f"{tag}:def", f"{tag}:rec", *named, *scored]


class Storage:
    """Tuning jobs and their training jobs, kept in Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._list_page = redis.register_script(_script(_LIST_PAGE))
        self._put = redis.register_script(_PUT_TRAINING_JOBS)
        self._create = redis.register_script(_CREATE_TUNING_JOB)
        self._delete = redis.register_script(_DELETE_TUNING_JOB)
        self.accounts = Accounts(redis)

    async def create_tuning_job(
        self, account: str, tuning_job: str, metric_name: str, objective_type: str
    ) -> bool:
        """Create the tuning job; False if it already exists as asked."""
        # The index first: see "Accounts" below for why and what a crash leaves.
        await self.accounts.index(account, tuning_job)
        keys = _keys(account, tuning_job)[:1]
        outcome = await self._create(keys, [metric_name, objective_type])
        if outcome < 0:
            raise Conflict(tuning_job)
        return outcome == 1

    async def put_training_jobs(
        self, account: str, tuning_job: str, jobs: Iterable[TrainingJob]
    ) -> int:
        """Upsert every job in one atomic step; return how many were given.

        A name given twice is written once, as its last job: the same outcome
        as writing them in order, since each replaces the whole summary.
        """
        given = list(jobs)
        latest = {job.name: job for job in given}
        args: list[Any] = []
        for job in latest.values():
            score = b"" if job.value is None else repr(job.value).encode()
            args += (job.name, record(job), score)
        if await self._put(_keys(account, tuning_job), args) < 0:
            raise NotFound(tuning_job)
        return len(given)

    async def delete_tuning_job(self, account: str, tuning_job: str) -> None:
        """Remove the tuning job and all of its training jobs."""
        deleted = await self._delete(_keys(account, tuning_job))
        # Also when not found: this clears a name a crash left in the index.
        await self.accounts.unindex(account, tuning_job)
        if not deleted:
            raise NotFound(tuning_job)

    async def list_page(
        self,
        account: str,
        tuning_job: str,
        *,
        by_score: bool,
        descending: bool,
        statuses: Sequence[int],
        limit: int,
        after: str = "",
        after_score: float | None = None,
    ) -> Page:
        """Read up to `limit` training jobs past the cursor, in order."""
        keys = _keys(account, tuning_job)
        first_set = 2 + STATUS_COUNT if by_score else 2
        sets = [keys[first_set + code] for code in statuses]
        score = "" if after_score is None else repr(after_score)
        args = [
            "score" if by_score else "name",
            "1" if descending else "0",
            limit,
            after,
            score,
        ]
        reply = await self._list_page([*keys[:2], *sets], args)
        if not reply:
            raise NotFound(tuning_job)
        rows = list(zip(reply[2::2], reply[3::2], strict=True))
        return Page(reply[0].decode(), reply[1].decode(), rows)


# ---------------------------------------------------------------------------
# Accounts: the index of tuning jobs, the throttle bucket, fault injection.
#
# These keys belong to a whole account and share the hash tag `hpo:{<account>}`,
# which differs from every tuning job's tag, so each script below touches a
# single Cluster slot:
#
# - `hpo:{<account>}:tuning-jobs`  sorted set, every score 0: tuning job names
# - `hpo:{<account>}:throttle`     hash: `tokens` left and their time `at_ms`
# - `hpo:{<account>}:faults`       string: the fault injection config, in
#                                  JSON, expiring with the config
#
# The index and a tuning job live on two slots, so no script may write both.
# CreateTuningJob adds the name to the index first and then creates the tuning
# job; DeleteTuningJob deletes the tuning job first and then takes the name
# out. The index therefore always holds every tuning job that exists; a crash
# (or a Redis fault) between the two steps can only leave a name whose tuning
# job does not exist, which ListTuningJobs skips and which the next Create or
# Delete of that name sets right.

_TAKE_TOKEN = """
-- Takes one token from an account's bucket and reads its fault config, so a
-- request with throttling and fault injection both on costs one round trip.
-- KEYS[1]  the account's bucket hash (fields tokens and at_ms)
-- KEYS[2]  the account's fault config
-- ARGV[1]  tokens added per second; "0" leaves the bucket alone
-- ARGV[2]  the bucket's size: requests an idle account may send at once
-- ARGV[3]  now, in milliseconds; "" takes the Redis server's clock, which
--          every replica shares
-- ARGV[4]  "1" to read the fault config, "0" not to
-- Returns {1 if a token was taken else 0, milliseconds until the next token
-- is due, the fault config or false}.
local allowed, wait_ms = 1, 0
local rate = tonumber(ARGV[1])
if rate > 0 then
  local burst = tonumber(ARGV[2])
  local now = tonumber(ARGV[3])
  if not now then
    local clock = redis.call('TIME')
    now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  end
  local state = redis.call('HMGET', KEYS[1], 'tokens', 'at_ms')
  local tokens, at = tonumber(state[1]), tonumber(state[2])
  if not tokens then tokens, at = burst, now end
  -- A clock that steps back must not mint tokens.
  if now > at then
    tokens = math.min(burst, tokens + (now - at) * rate / 1000)
    at = now
  end
  if tokens >= 1 then
    tokens = tokens - 1
  else
    allowed = 0
    wait_ms = math.ceil((1 - tokens) * 1000 / rate)
  end
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
             'at_ms', string.format('%d', at))
  -- A bucket left alone this long is full again, the same as no bucket.
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
end
local faults = false
if ARGV[4] == '1' then faults = redis.call('GET', KEYS[2]) end
return {allowed, wait_ms, faults}
"""

_DESCRIBE_TUNING_JOB = """
-- Describes a tuning job without walking its training jobs.
-- KEYS[1]      the tuning job's definition hash
-- KEYS[2]      the records hash
-- KEYS[3..7]   the name-ordered sets of status codes 0..4
-- KEYS[8..12]  the scored sets of status codes 0..4
-- Returns {} when the tuning job does not exist, otherwise {metric, type,
-- count of status 0, ..., count of status 4, best name, best record}, the
-- last two only when a training job has a final objective value. The best
-- is the highest value for Maximize (ties: the greatest name), the lowest
-- for Minimize (ties: the least name), as the lists order them.
local definition = redis.call('HMGET', KEYS[1], 'metric', 'type')
if not definition[1] then return {} end
local out = {definition[1], definition[2]}
for i = 3, 7 do out[#out + 1] = redis.call('ZCARD', KEYS[i]) end

local maximize = definition[2] == 'Maximize'
--@include bytes_before

local best, best_score = nil, nil
for i = 8, 12 do
  local head
  if maximize then head = redis.call('ZREVRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  else head = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES') end
  if #head > 0 then
    local name, score = head[1], tonumber(head[2])
    local better = best == nil
    if not better and score ~= best_score then
      if maximize then better = score > best_score
      else better = score < best_score end
    elseif not better then
      if maximize then better = bytes_before(best, name)
      else better = bytes_before(name, best) end
    end
    if better then best, best_score = name, score end
  end
end
if best then
  out[#out + 1] = best
  out[#out + 1] = redis.call('HGET', KEYS[2], best)
end
return out
"""


@dataclass(frozen=True)
class Description:
    """A tuning job's objective, its count of jobs per status, and its best job."""

    metric_name: str
    objective_type: str
    counts: list[int]
    best: tuple[bytes, bytes] | None


def _account_tag(account: str) -> str:
    return f"hpo:{{{account}}}"


class Accounts:
    """What belongs to a whole account: its index, bucket and fault config."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._take = redis.register_script(_TAKE_TOKEN)
        self._describe = redis.register_script(_script(_DESCRIBE_TUNING_JOB))

    async def take_token(
        self,
        account: str,
        *,
        rate: float,
        burst: int,
        now_ms: int | None,
        read_faults: bool,
    ) -> tuple[bool, int, bytes | None]:
        """(allowed, ms until a token is due, raw fault config or None)."""
        tag = _account_tag(account)
        now = "" if now_ms is None else str(now_ms)
        args = [repr(rate), burst, now, "1" if read_faults else "0"]
        reply = await self._take([f"{tag}:throttle", f"{tag}:faults"], args)
        return bool(reply[0]), int(reply[1]), reply[2]

    async def faults(self, account: str) -> bytes | None:
        """The account's raw fault config, or None."""
        return await self.redis.get(f"{_account_tag(account)}:faults")

    async def faults_with_ttl(self, account: str) -> tuple[bytes | None, int]:
        """The raw fault config and its seconds to live (-1: no expiry)."""
        key = f"{_account_tag(account)}:faults"
        async with self.redis.pipeline(transaction=False) as pipe:
            raw, ttl_s = await pipe.get(key).ttl(key).execute()
        return raw, int(ttl_s)

    async def put_faults(self, account: str, raw: bytes, ttl_s: int | None) -> None:
        """Replace the account's fault config; it vanishes after `ttl_s`."""
        await self.redis.set(f"{_account_tag(account)}:faults", raw, ex=ttl_s)

    async def delete_faults(self, account: str) -> None:
        """Remove the account's fault config, if any."""
        await self.redis.delete(f"{_account_tag(account)}:faults")

    async def index(self, account: str, tuning_job: str) -> None:
        """Enter the tuning job's name in its account's index."""
        await self.redis.zadd(f"{_account_tag(account)}:tuning-jobs", {tuning_job: 0})

    async def unindex(self, account: str, tuning_job: str) -> None:
        """Take the tuning job's name out of its account's index."""
        await self.redis.zrem(f"{_account_tag(account)}:tuning-jobs", tuning_job)

    async def tuning_jobs(
        self, account: str, limit: int, after: str = ""
    ) -> tuple[list[tuple[str, str, str]], bool, str]:
        """Up to `limit` names past `after`: (name, metric, type) of each.

        Also answers whether more names follow, and the last name read, where
        the next page starts. Names whose tuning job does not exist (left by a
        crash between the two steps of a Create or Delete) are skipped.
        """
        start = f"({after}" if after else "-"
        key = f"{_account_tag(account)}:tuning-jobs"
        names = await self.redis.zrangebylex(key, start, "+", 0, limit + 1)
        more = len(names) > limit
        names = [name.decode() for name in names[:limit]]
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hmget(_keys(account, name)[0], "metric", "type")
            definitions = await pipe.execute()
        found = [
            (name, metric.decode(), kind.decode())
            for name, (metric, kind) in zip(names, definitions, strict=True)
            if metric is not None
        ]
        return found, more, names[-1] if names else ""

    async def describe(self, account: str, tuning_job: str) -> Description:
        """The tuning job's objective, counts per status and best training job."""
        reply = await self._describe(_keys(account, tuning_job))
        if not reply:
            raise NotFound(tuning_job)
        counts = [int(count) for count in reply[2 : 2 + STATUS_COUNT]]
        best = None
        if len(reply) > 2 + STATUS_COUNT:
            best = (reply[-2], reply[-1])
        return Description(reply[0].decode(), reply[1].decode(), counts, best)
