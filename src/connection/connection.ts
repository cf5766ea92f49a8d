import { ErrorCodes, SseError, errorBody } from '../errors.js'
import { encodeCommentText, encodeEventText } from '../wire/encode.js'
import { joinFrames, MAX_BATCH_BYTES, scheduleFlush, type Flushable } from './flush.js'
import type { Transport } from './transport.js'

/**
 * Why a connection closed. A closed connection is not an error: it leaves every index at once and
 * is reported with one of these.
 */
export type CloseReason =
  /** The client went away (tab closed, network lost). */
  | 'client-gone'
  /** It reached the hub's `maxConnectionAgeMs`; the client reconnects and resumes. */
  | 'timeout'
  /** The application or an operator closed it (`close()`, `DELETE /clients/{id}`). */
  | 'server-close'
  /** A newer connection took its place under the `evict` overflow policy. */
  | 'evicted'
  /** Its unsent bytes passed `maxQueuedBytes`; it reconnects and catches up from history. */
  | 'slow-consumer'
  /** The hub is shutting down. */
  | 'shutdown'
  /** Every topic it followed got its final event (finite topics). */
  | 'completed'
  /** Its token expired; the client reconnects with a fresh one and resumes. */
  | 'expired'
  /** Its client id's tokens were revoked. */
  | 'revoked'

/** A map of event names to payload types, for typed {@link Connection.send}. */
export type EventMap = Record<string, unknown>

/** The object form of {@link Connection.send}. */
export type SendMessage<E extends EventMap> = {
  [K in keyof E & string]: {
    /** Event type; omitted means `message`. */
    event?: K
    /** Payload: a string is sent as is, anything else JSON-encoded. */
    data: E[K]
    /** Sets the client's last event id. Leave unset to keep the hub's resume position. */
    id?: string
    /** Reconnection delay for the client, in ms. */
    retry?: number
  }
}[keyof E & string]

/** Options of the positional form of {@link Connection.send}. */
export interface SendOptions {
  /** Sets the client's last event id. Leave unset to keep the hub's resume position. */
  id?: string
  /** Reconnection delay for the client, in ms. */
  retry?: number
}

/** What a {@link Connection} is told at creation. */
export interface ConnectionInit {
  /** Connection id, unique in this process. */
  readonly id: string
  /** The application's client id, when given. */
  readonly clientId: string | undefined
  /** Topics followed. */
  readonly topics: readonly string[]
  /** Bytes that may wait unsent before the connection is closed as a slow consumer. */
  readonly maxQueuedBytes: number
  /** Called once, when the connection closed for any reason. */
  readonly onClosed: (connection: Connection, reason: CloseReason) => void
  /** Shared counters the connection adds its output to. */
  readonly counters: { bytesOut: number }
  /** The client's address (the transport's peer, or what a trusted proxy forwarded). */
  readonly remoteAddress: string | undefined
}

/** Any iterable source a connection or topic can be fed from: a generator, a Node or Web stream. */
export type EventSource<T> = AsyncIterable<T> | Iterable<T>

/** Turns a payload into the `data` string: strings as is, bytes as UTF-8, anything else as JSON. */
export function dataToString(data: unknown): string {
  if (typeof data === 'string') return data
  if (data instanceof Uint8Array) return Buffer.from(data).toString('utf8')
  const json = JSON.stringify(data) as string | undefined
  // JSON.stringify(undefined) and functions give undefined: send nothing rather than "undefined".
  return json ?? ''
}

const heartbeatFrame = Buffer.from(':\n\n')

/**
 * One open event stream. The only object that writes to a socket (through its {@link Transport}).
 *
 * Sending never throws: on a closed connection it returns `false`, so a broadcast loop in an
 * application cannot be broken by one client leaving. Events sent before the stream opened are
 * kept in order and flushed when it opens (Spring's early-send buffering).
 */
export class Connection<E extends EventMap = EventMap> implements Flushable {
  /** Connection id, unique in this process. */
  readonly id: string
  /** The application's client id (several connections may share one), if any. */
  readonly clientId: string | undefined
  /** Topics this connection follows. */
  readonly topics: readonly string[]
  /** The client's address: the peer's, or what a trusted proxy forwarded. */
  readonly remoteAddress: string | undefined
  /** When it was accepted, ms since the epoch. */
  readonly connectedAt: number = Date.now()
  /** Last time bytes were written to it, ms since the epoch (used by heartbeats and LRU eviction). */
  lastWriteAt: number = this.connectedAt
  /** Bytes written to it. */
  bytesOut = 0
  /** When its token expires (ms since the epoch): the hub ends it then (reason `expired`). */
  expiresAt: number | undefined = undefined
  private stateValue: 'opening' | 'open' | 'closed' = 'opening'
  // True until the hub finished the replay: application sends wait behind it, in order.
  private buffering = true
  private reasonValue: CloseReason | undefined
  private early: Buffer[] = []
  private earlyBytes = 0
  // Frames of this loop turn, written together in the check phase (see flush.ts). The first one
  // in a field: most turns carry one frame, and a held array would cost every idle stream memory.
  private batchFirst: Buffer | null = null
  private batchRest: Buffer[] | null = null
  private batchBytes = 0
  /** @internal Set while listed for the next batch write. */
  flushScheduled = false
  private readonly maxQueuedBytes: number
  private readonly onClosed: ConnectionInit['onClosed']
  private readonly counters: ConnectionInit['counters']

  /** @internal Created by the hub. */
  constructor(
    private readonly transport: Transport,
    init: ConnectionInit,
  ) {
    this.id = init.id
    this.clientId = init.clientId
    this.topics = init.topics
    this.remoteAddress = init.remoteAddress
    this.maxQueuedBytes = init.maxQueuedBytes
    this.onClosed = init.onClosed
    this.counters = init.counters
    transport.onClose(() => this.finish('client-gone'))
  }

  /** `opening` until the hub sent the stream's first bytes, `open`, then `closed`. */
  get state(): 'opening' | 'open' | 'closed' {
    return this.stateValue
  }

  /** Why it closed; `undefined` while open. */
  get closeReason(): CloseReason | undefined {
    return this.reasonValue
  }

  /** The peer's address. */

  /** Bytes waiting to be sent (the slow-consumer measure). */
  get queuedBytes(): number {
    return (
      this.earlyBytes +
      this.batchBytes +
      (this.stateValue === 'open' ? this.transport.queuedBytes : 0)
    )
  }

  /**
   * Sends one event to this connection only. Returns `false` when the connection is closed (or
   * closed by this send as a slow consumer), `true` otherwise.
   *
   * @example conn.send('progress', { pct: 50 })
   * @throws {WireFieldError} when `event` or `id` contain CR/LF (or NUL in `id`): a programming error.
   */
  send<K extends keyof E & string>(event: K, data: E[K], options?: SendOptions): boolean
  /** Sends one event, given as an object. */
  send(message: SendMessage<E>): boolean
  send(first: string | SendMessage<E>, data?: unknown, options: SendOptions = {}): boolean {
    const message =
      typeof first === 'string'
        ? { event: first, data: dataToString(data), ...options }
        : { ...first, data: dataToString(first.data) }
    return this.sendFrame(Buffer.from(encodeEventText(message)))
  }

  /** Sends a comment line (ignored by clients; keeps proxies from timing out). */
  comment(text = ''): boolean {
    return this.sendFrame(Buffer.from(encodeCommentText(text)))
  }

  /**
   * Sends every item of `source` as an event of type `event` (a generator of tokens becomes a
   * stream of events). Resolves with the number sent; stops early when the connection closes.
   */
  async pipe<K extends keyof E & string>(source: EventSource<E[K]>, event?: K): Promise<number> {
    let sent = 0
    for await (const item of source) {
      if (this.stateValue === 'closed') break
      const ok =
        event === undefined ? this.send({ data: item } as SendMessage<E>) : this.send(event, item)
      if (!ok) break
      sent++
    }
    return sent
  }

  /** Ends the stream (reason `server-close`); the client's EventSource will reconnect. */
  close(): void {
    this.end('server-close')
  }

  /** An application send: kept in order behind the replay until the stream is live. */
  private sendFrame(frame: Buffer): boolean {
    if (this.stateValue === 'closed') return false
    if (!this.buffering) return this.writeFrame(frame)
    this.early.push(frame)
    this.earlyBytes += frame.length
    if (this.earlyBytes > this.maxQueuedBytes) {
      this.destroy('slow-consumer')
      return false
    }
    return true
  }

  /**
   * @internal Writes pre-encoded bytes: the hub's fan-out path. Returns false once closed.
   * A connection that still holds more than `maxQueuedBytes` unsent when the next frame comes is
   * a slow consumer: it is dropped, not buffered. (Checked before the write, so one frame larger
   * than the mark still goes out to a client that reads; memory stays under mark + one frame.)
   * The frame joins this loop turn's batch, written in one socket write (see flush.ts).
   */
  writeFrame(frame: Buffer): boolean {
    if (this.stateValue !== 'open') return false
    if (this.transport.queuedBytes > this.maxQueuedBytes) {
      this.destroy('slow-consumer')
      return false
    }
    if (this.batchFirst === null) this.batchFirst = frame
    else if (this.batchRest === null) this.batchRest = [frame]
    else this.batchRest.push(frame)
    this.batchBytes += frame.length
    if (this.batchBytes >= MAX_BATCH_BYTES) this.flush()
    else scheduleFlush(this)
    this.bytesOut += frame.length
    this.counters.bytesOut += frame.length
    this.lastWriteAt = Date.now()
    return true
  }

  /** @internal Writes a heartbeat comment. */
  heartbeat(): void {
    this.writeFrame(heartbeatFrame)
  }

  /** @internal Writes this turn's batch now (the check phase does it for every connection). */
  flush(): void {
    const first = this.batchFirst
    if (first === null) return
    const bytes = this.batchRest === null ? first : joinFrames(first, this.batchRest)
    this.batchFirst = null
    this.batchRest = null
    this.batchBytes = 0
    if (this.stateValue === 'open') this.transport.write(bytes)
  }

  /** @internal Resolves when the peer took the queued bytes (or the connection closed). */
  drained(): Promise<void> {
    if (this.stateValue !== 'open') return Promise.resolve()
    this.flush()
    return this.transport.drained()
  }

  /** @internal Sends the headers and `prelude`; application sends still wait for {@link Connection.live}. */
  open(prelude: readonly Buffer[]): void {
    if (this.stateValue !== 'opening') return
    this.transport.open()
    this.stateValue = 'open'
    for (const frame of prelude) this.writeFrame(frame)
  }

  /** @internal The replay is done: flush what the application sent meanwhile, then write directly. */
  live(): void {
    if (this.stateValue !== 'open' || !this.buffering) return
    this.buffering = false
    const early = this.early
    this.early = []
    this.earlyBytes = 0
    for (const frame of early) this.writeFrame(frame)
  }

  /** @internal Answers with a status instead of a stream (204 for a finished topic, 4xx/5xx). */
  reject(status: number, body?: string, headers?: Readonly<Record<string, string>>): void {
    if (this.stateValue !== 'opening') return
    // Record our reason before the transport reports its own close.
    this.finish('server-close')
    this.transport.reject(status, body, headers)
  }

  /**
   * @internal Refuses the stream with `error`: its status ({@link SseError.status}, from the
   * code) and its JSON body, plus `Retry-After` when `retryAfterSeconds` is given (limits,
   * shutdown, a broker outage: the client may come back).
   */
  refuse(error: SseError, retryAfterSeconds?: number): void {
    this.reject(
      error.status,
      errorBody(error),
      retryAfterSeconds === undefined ? undefined : { 'retry-after': String(retryAfterSeconds) },
    )
  }

  /**
   * @internal Answers that the stream has nothing to send, ever: every topic it follows has
   * finished and the client already got each final event. `204 No Content` is the one answer
   * that stops an EventSource for good (it does not reconnect).
   */
  finished(): void {
    this.reject(204)
  }

  /** @internal Ends gracefully (queued bytes are still sent) with `reason`. */
  end(reason: CloseReason): void {
    if (this.stateValue === 'closed') return
    const wasOpen = this.stateValue === 'open'
    // The batch goes out before the end: a final event is never lost to the coalescing.
    this.flush()
    // Record our reason before the transport reports its own close.
    this.finish(reason)
    if (wasOpen) {
      this.transport.end()
    } else {
      // Not open yet: answer so the request does not hang (a reconnect may land elsewhere).
      const error = new SseError(
        ErrorCodes.CLOSED,
        'The connection was closed before it opened; reconnect.',
      )
      this.transport.reject(error.status, errorBody(error), { 'retry-after': '1' })
    }
  }

  /** @internal Drops the stream at once with `reason` (queued bytes are discarded). */
  destroy(reason: CloseReason): void {
    if (this.stateValue === 'closed') return
    this.finish(reason)
    this.transport.destroy()
  }

  private finish(reason: CloseReason): void {
    if (this.stateValue === 'closed') return
    this.stateValue = 'closed'
    this.reasonValue = reason
    this.early = []
    this.earlyBytes = 0
    this.batchFirst = null
    this.batchRest = null
    this.batchBytes = 0
    this.onClosed(this as unknown as Connection, reason)
  }
}
