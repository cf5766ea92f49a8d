/**
 * The Redis broker's log format: one Redis Stream holds every publication and command, as entries
 * of short fields (`n` number, `k` keys, `e` event, `r` retry, `c` close, `d` data, `x` command);
 * the publish script that appends them; and the event ids and cursors built on stream ids.
 */
import type { Cursor, Publication, PublishRequest } from './broker.js'

/**
 * Event ids are a versioned cursor vector: `1~<partition>.<epoch>.<stream id>`. This release
 * keeps one partition (`0`), so a vector has one element; the format is the public contract that
 * a partitioned layout extends (`1~0.e.1-0~17.e.5-2`), and ids are opaque to clients anyway.
 */
export const idPattern = /^1~0\.([0-9a-z]{1,16})\.(\d{1,20})-(\d{1,20})$/

/** A Redis stream entry id, `<ms>-<seq>`, as numbers. */
export interface StreamId {
  readonly ms: bigint
  readonly seq: bigint
}

/** Parses a stream entry id (`1700000000000-3`). */
export function parseStreamId(value: string): StreamId {
  const dash = value.indexOf('-')
  return { ms: BigInt(value.slice(0, dash)), seq: BigInt(value.slice(dash + 1)) }
}

/** Orders two stream entry ids: negative, 0, positive. */
export function compareIds(a: StreamId, b: StreamId): number {
  if (a.ms !== b.ms) return a.ms < b.ms ? -1 : 1
  if (a.seq !== b.seq) return a.seq < b.seq ? -1 : 1
  return 0
}

/** The greatest stream id before `id`: no entry can exist strictly between the two. */
export function predecessor(id: StreamId): StreamId {
  if (id.seq > 0n) return { ms: id.ms, seq: id.seq - 1n }
  return { ms: id.ms - 1n, seq: 18446744073709551615n }
}

/** A publication read from (or appended to) the stream, with its position. */
export interface RedisPublication extends Publication {
  readonly epoch: string
  readonly streamId: StreamId
  /** `streamId` as Redis wrote it (`<ms>-<seq>`): cursors keep this string, never build one. */
  readonly streamRaw: string
}

/** A connection's position: the epoch and the last stream entry id it got. */
export class RedisCursor implements Cursor {
  constructor(
    private epoch: string,
    private position: StreamId,
    private raw: string,
  ) {}

  // Runs once per recipient of every live event: it compares and keeps references, it allocates
  // nothing (the id string is the publication's, shared by every recipient and its frame).
  advance(publication: Publication): string | null {
    const pub = publication as RedisPublication
    // A publication of a newer epoch (Redis lost its data) starts a new log: take it.
    if (pub.epoch === this.epoch && compareIds(pub.streamId, this.position) <= 0) return null
    this.epoch = pub.epoch
    this.position = pub.streamId
    this.raw = pub.streamRaw
    return pub.id
  }

  get id(): string {
    return `1~0.${this.epoch}.${this.raw}`
  }
}

/**
 * The publish script: appends a batch of entries (publishes and commands, in order), atomically:
 * creates the epoch if Redis lost it, honours idempotency keys (a key used earlier in the same
 * batch counts), numbers the entries without gaps, trims by age, tracks finished topics; then
 * reads back for the node what it has not read yet (its read cursor), so that a publishing node
 * needs no `XREAD` of its own: its own entries come back as id and number only (it has their
 * fields), the others' in full.
 *
 * KEYS: log, meta, the node's read cursor, then for each entry: its idempotency key (`idem:` plus
 * the key; only when it has one), then one `end:` key per topic.
 * ARGV: maxlen, epoch candidate, minid ('' = no age trim), ended ttl ms, idempotency window ms,
 * the number of entries, the node's position (where to read from when its cursor expired; '' =
 * read nothing back), most entries read back, the cursor's ttl ms; then for each entry: close
 * ('1'/'0'), the request's fingerprint ('' = no idempotency key), its number of `end:` keys, its
 * number of field/value strings, those strings.
 * Returns `{epoch, id1, outcome1, id2, outcome2..., read}`: an outcome is '' (appended),
 * 'duplicate' (a used key: the first entry's id, nothing appended) or 'conflict' (another event
 * under a used key: id ''); `read` is `{from, entry...}` (`{}` when nothing was asked), an entry
 * `{id, n}` for one of this batch, `{id, fields}` for any other.
 */
export const publishBatchScript = `
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[2], 'e', epoch)
end
-- 'n' numbers the entries without gaps, so a reader knows when trimming overtook it.
local n = tonumber(redis.call('HGET', KEYS[2], 'n') or '0')
local appended = false
local out = {epoch}
-- This batch's entries, in order, and their numbers by id (the node has their fields).
local ownIds = {}
local own = {}
local k = 4
local a = 10
for _ = 1, tonumber(ARGV[6]) do
  local close = ARGV[a]
  local fingerprint = ARGV[a + 1]
  local ends = tonumber(ARGV[a + 2])
  local first = a + 4
  local last = first + tonumber(ARGV[a + 3]) - 1
  a = last + 1
  local idem = nil
  if fingerprint ~= '' then
    idem = KEYS[k]
    k = k + 1
  end
  local endFirst = k
  k = k + ends
  local used = nil
  -- An idempotency key already used (by an earlier batch or earlier in this one): the first
  -- entry's id, nothing appended (or, for another event under the key, a conflict). Atomic with
  -- the append: concurrent retries on any node publish once.
  if idem then used = redis.call('GET', idem) end
  if used then
    local space = string.find(used, ' ', 1, true)
    if string.sub(used, space + 1) ~= fingerprint then
      out[#out + 1] = ''
      out[#out + 1] = 'conflict'
    else
      out[#out + 1] = string.sub(used, 1, space - 1)
      out[#out + 1] = 'duplicate'
    end
  else
    n = n + 1
    appended = true
    local fields = {'n', string.format('%d', n)}
    for i = first, last do fields[#fields + 1] = ARGV[i] end
    local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
    own[id] = fields[2]
    ownIds[#ownIds + 1] = id
    if idem then redis.call('SET', idem, id .. ' ' .. fingerprint, 'PX', ARGV[5]) end
    for i = endFirst, endFirst + ends - 1 do
      redis.call('DEL', KEYS[i])
      if close == '1' then
        redis.call('HSET', KEYS[i], 'i', id, unpack(fields))
        redis.call('PEXPIRE', KEYS[i], ARGV[4])
      end
    end
    out[#out + 1] = id
    out[#out + 1] = ''
  end
end
if appended then
  redis.call('HSET', KEYS[2], 'n', string.format('%d', n))
  if ARGV[3] ~= '' then redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[3]) end
end
local read = {}
if ARGV[7] ~= '' then
  local from = redis.call('GET', KEYS[3]) or ARGV[7]
  read[1] = from
  local last = from
  -- The batch's entries are the newest of the log, one after the other (a script is atomic):
  -- what the node has not read is the others' entries before them, then its own.
  local upto = '+'
  if #ownIds > 0 then upto = '(' .. ownIds[1] end
  local others = redis.call('XRANGE', KEYS[1], '(' .. from, upto, 'COUNT', ARGV[8])
  for _, entry in ipairs(others) do
    read[#read + 1] = entry
    last = entry[1]
  end
  if #others < tonumber(ARGV[8]) then
    for _, id in ipairs(ownIds) do
      read[#read + 1] = {id, own[id]}
      last = id
    end
  end
  redis.call('SET', KEYS[3], last, 'PX', ARGV[9])
end
out[#out + 1] = read
return out
`

/** Flat `[k, v, k, v]` (RESP2 / legacy mapping) or an object (RESP3 mapping) to a record. */
export function toRecord(reply: unknown): Record<string, unknown> {
  if (Array.isArray(reply)) {
    const out: Record<string, unknown> = {}
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = reply[i + 1]
    return out
  }
  if (reply instanceof Map) return Object.fromEntries(reply as Map<string, unknown>)
  return (reply ?? {}) as Record<string, unknown>
}

/** A stream entry as XRANGE and XREAD return it. */
export type Entry = [id: string, fields: string[]]

/** The fields of a publication's entry (the publish script prepends `n`). */
export function entryFields(request: PublishRequest): string[] {
  const fields = ['k', request.keys.join('\n')]
  if (request.event !== undefined) fields.push('e', request.event)
  if (request.retry !== undefined) fields.push('r', String(request.retry))
  if (request.close === true) fields.push('c', '1')
  fields.push('d', request.data)
  return fields
}

/** The publication of an entry read from the stream; `null` for a command entry (no keys). */
export function toPublication(
  epoch: string,
  id: string,
  fields: readonly string[],
  streamId?: StreamId,
): RedisPublication | null {
  let keys: string[] | undefined
  let event: string | undefined
  let retry: number | undefined
  let close = false
  let data = ''
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const value = fields[i + 1]!
    switch (fields[i]) {
      case 'k':
        keys = value.split('\n')
        break
      case 'e':
        event = value
        break
      case 'r':
        retry = Number(value)
        break
      case 'c':
        close = value === '1'
        break
      case 'd':
        data = value
        break
    }
  }
  if (keys === undefined) return null // a command entry
  streamId ??= parseStreamId(id)
  return {
    id: `1~0.${epoch}.${id}`,
    keys,
    event,
    data,
    retry,
    close,
    time: Number(streamId.ms),
    epoch,
    streamId,
    streamRaw: id,
  }
}

/** The gapless number (`n`) of an entry, written by the publish script; `null` if absent. */
export function entryNumber(fields: readonly string[]): number | null {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === 'n') return Number(fields[i + 1])
  return null
}

/** A new random epoch: 8 characters of `[0-9a-z]`. */
export function newEpoch(): string {
  return Math.random().toString(36).slice(2, 10).padEnd(8, '0')
}

/** Rejects with `message` when `promise` has not settled within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
