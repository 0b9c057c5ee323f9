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
local byte = string.byte

-- Lua compares strings by the server's locale; names must sort by bytes.
local function bytes_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = byte(a, i), byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

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

local function read_scored(key)
  local reply
  if descending then
    local card = redis.call('ZCARD', key)
    local stop = card
    if after ~= '' then stop = rank_of_cursor(key, false) end
    if stop == 0 then return {}, {} end
    reply = redis.call('ZREVRANGE', key, card - stop, card - stop + want - 1,
                       'WITHSCORES')
  else
    local start = 0
    if after ~= '' then start = rank_of_cursor(key, true) end
    reply = redis.call('ZRANGE', key, start, start + want - 1, 'WITHSCORES')
  end
  local names, scores = {}, {}
  for i = 1, #reply, 2 do
    names[#names + 1] = reply[i]
    scores[#scores + 1] = tonumber(reply[i + 1])
  end
  return names, scores
end

local function read_named(key)
  local names
  if descending then
    local top = '+'
    if after ~= '' then top = '(' .. after end
    names = redis.call('ZREVRANGEBYLEX', key, top, '-', 'LIMIT', 0, want)
  else
    local bottom = '-'
    if after ~= '' then bottom = '(' .. after end
    names = redis.call('ZRANGEBYLEX', key, bottom, '+', 'LIMIT', 0, want)
  end
  return names, {}
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

local lists, scores, heads = {}, {}, {}
for i = 3, #KEYS do
  local names, values
  if by_score then names, values = read_scored(KEYS[i])
  else names, values = read_named(KEYS[i]) end
  if #names > 0 then
    lists[#lists + 1] = names
    scores[#scores + 1] = values
    heads[#heads + 1] = 1
  end
end

local page = {}
if #lists == 1 then
  page = lists[1]
else
  while #page < want do
    local best = nil
    for i = 1, #lists do
      local at = heads[i]
      local name = lists[i][at]
      if name and (best == nil or first(name, scores[i][at],
          lists[best][heads[best]], scores[best][heads[best]])) then
        best = i
      end
    end
    if best == nil then break end
    page[#page + 1] = lists[best][heads[best]]
    heads[best] = heads[best] + 1
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
--              score ("" when the job has no final objective value)
-- Returns -1 when the tuning job does not exist, else the jobs written.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local byte = string.byte
local count = #ARGV / 3

-- A name given twice must be applied in order: take the one-by-one path.
local seen, unique = {}, true
for i = 1, #ARGV, 3 do
  if seen[ARGV[i]] then unique = false break end
  seen[ARGV[i]] = true
end
if not unique then
  for i = 1, #ARGV, 3 do
    local name, record, score = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local code = byte(record, 1) - 47
    local old = redis.call('HGET', KEYS[2], name)
    if old then
      local was = byte(old, 1) - 47
      if was ~= code then redis.call('ZREM', KEYS[2 + was], name) end
      if was ~= code or score == '' then
        redis.call('ZREM', KEYS[7 + was], name)
      end
    end
    redis.call('HSET', KEYS[2], name, record)
    redis.call('ZADD', KEYS[2 + code], 0, name)
    if score ~= '' then redis.call('ZADD', KEYS[7 + code], score, name) end
  end
  return count
end

-- Distinct names: read the old records at once, take each job out of the
-- sets it leaves, then write records and memberships with one call per key
-- (a call per job costs more than the insertions themselves).
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
        self._list_page = redis.register_script(_LIST_PAGE)
        self._put = redis.register_script(_PUT_TRAINING_JOBS)
        self._create = redis.register_script(_CREATE_TUNING_JOB)
        self._delete = redis.register_script(_DELETE_TUNING_JOB)

    async def create_tuning_job(
        self, account: str, tuning_job: str, metric_name: str, objective_type: str
    ) -> bool:
        """Create the tuning job; False if it already exists as asked."""
        keys = _keys(account, tuning_job)[:1]
        outcome = await self._create(keys, [metric_name, objective_type])
        if outcome < 0:
            raise Conflict(tuning_job)
        return outcome == 1

    async def put_training_jobs(
        self, account: str, tuning_job: str, jobs: Iterable[TrainingJob]
    ) -> int:
        """Upsert every job in one atomic step; return how many were written."""
        args: list[Any] = []
        for job in jobs:
            score = b"" if job.value is None else repr(job.value).encode()
            args += (job.name, record(job), score)
        written = await self._put(_keys(account, tuning_job), args)
        if written < 0:
            raise NotFound(tuning_job)
        return int(written)

    async def delete_tuning_job(self, account: str, tuning_job: str) -> None:
        """Remove the tuning job and all of its training jobs."""
        if not await self._delete(_keys(account, tuning_job)):
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
