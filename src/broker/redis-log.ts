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
}

/** A connection's position: the epoch and the last stream entry id it got. */
export class RedisCursor implements Cursor {
  constructor(
    private epoch: string,
    private position: StreamId,
    private raw: string,
  ) {}

  advance(publication: Publication): string | null {
    const pub = publication as RedisPublication
    // A publication of a newer epoch (Redis lost its data) starts a new log: take it.
    if (pub.epoch === this.epoch && compareIds(pub.streamId, this.position) <= 0) return null
    this.epoch = pub.epoch
    this.position = pub.streamId
    this.raw = `${pub.streamId.ms}-${pub.streamId.seq}`
    return pub.id
  }

  get id(): string {
    return `1~0.${this.epoch}.${this.raw}`
  }
}

/**
 * The publish script: creates the epoch if Redis lost it, honours an idempotency key, appends,
 * trims by age, tracks finished topics, atomically. KEYS: log, meta, the idempotency key (`idem:`
 * plus the key; unused without one), then one `end:` key per topic. ARGV: maxlen, epoch
 * candidate, minid ('' = no age trim), ended ttl ms, close ('1'/'0'), time, the request's
 * fingerprint ('' = no idempotency key), the idempotency window in ms, then the entry's
 * field/value pairs. Returns `{id, epoch}`, or `{id, epoch, 'duplicate'}` /
 * `{'', epoch, 'conflict'}` for a used key.
 */
export const publishScript = `
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[2], 'e', epoch)
end
-- An idempotency key already used: the first entry's id, nothing appended (or, for another
-- event under the key, a conflict). Atomic with the append: concurrent retries on any node
-- publish once.
if ARGV[7] ~= '' then
  local first = redis.call('GET', KEYS[3])
  if first then
    local space = string.find(first, ' ', 1, true)
    if string.sub(first, space + 1) ~= ARGV[7] then return {'', epoch, 'conflict'} end
    return {string.sub(first, 1, space - 1), epoch, 'duplicate'}
  end
end
-- 'n' numbers the entries without gaps, so a reader knows when trimming overtook it.
local fields = {'n', tostring(redis.call('HINCRBY', KEYS[2], 'n', 1))}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
if ARGV[3] ~= '' then redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[3]) end
if ARGV[7] ~= '' then redis.call('SET', KEYS[3], id .. ' ' .. ARGV[7], 'PX', ARGV[8]) end
for i = 4, #KEYS do
  if ARGV[5] == '1' then
    redis.call('DEL', KEYS[i])
    redis.call('HSET', KEYS[i], 'i', id, unpack(fields))
    redis.call('PEXPIRE', KEYS[i], ARGV[4])
  else
    redis.call('DEL', KEYS[i])
  end
end
return {id, epoch}
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
  const streamId = parseStreamId(id)
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
