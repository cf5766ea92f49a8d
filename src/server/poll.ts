/**
 * Long polling, for clients without EventSource or behind proxies that buffer streams:
 * `GET /poll?topic=...&lastEventId=...&timeoutMs=...` answers a JSON array of events as soon as
 * one exists, or `[]` at the timeout. It is a short-lived hub connection whose transport collects
 * the frames instead of streaming them, so ids, replay after `lastEventId`, finite topics (`204`
 * once the final event was seen) and every limit are those of `/events`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Connection } from '../connection/connection.js'
import type { Transport } from '../connection/transport.js'
import type { Hub } from '../hub/hub.js'
import type { SubscribeParams } from '../hub/types.js'
import { createParser } from '../wire/parse.js'
import { JSON_TYPE } from '../connection/http1.js'

/** One event of a `/poll` answer. */
export interface PolledEvent {
  readonly id: string
  readonly event: string
  readonly data: string
}

/** Longest wait of one poll, in ms (`timeoutMs` is clamped to it). */
export const MAX_POLL_TIMEOUT_MS = 30_000
/** Default wait of one poll, in ms. */
export const DEFAULT_POLL_TIMEOUT_MS = 25_000
/** Most events in one answer: the client polls again from the last id for the rest. */
export const MAX_POLL_EVENTS = 500

/** Reads `timeoutMs` from the query: an integer in [0, 30000], default 25000; `undefined` if bad. */
export function pollTimeout(raw: string | null): number | undefined {
  if (raw === null || raw === '') return DEFAULT_POLL_TIMEOUT_MS
  if (!/^\d{1,9}$/.test(raw)) return undefined
  return Math.min(Number(raw), MAX_POLL_TIMEOUT_MS)
}

/** Answers one poll on `res` through a short-lived connection of `hub`. */
export function poll(
  hub: Hub,
  req: IncomingMessage,
  res: ServerResponse,
  params: SubscribeParams,
  timeoutMs: number,
  headers: Readonly<Record<string, string>>,
): void {
  const events: PolledEvent[] = []
  let done = false
  let batch: NodeJS.Immediate | undefined
  // Set once attach() returns: the hub may answer (reject) from inside attach().
  const attached: { connection?: Connection; timer?: NodeJS.Timeout } = {}
  let closeListener: (() => void) | undefined

  const answer = (status: number, body: string | undefined, extra = {}): void => {
    if (done) return
    done = true
    clearTimeout(attached.timer)
    if (batch !== undefined) clearImmediate(batch)
    res.off('close', onGone)
    if (!res.destroyed && !res.headersSent) {
      res.writeHead(status, {
        ...headers,
        ...extra,
        'cache-control': 'no-store',
        ...(body === undefined
          ? {}
          : {
              'content-type': JSON_TYPE,
              'content-length': String(Buffer.byteLength(body)),
            }),
      })
      res.end(body)
    }
    // Leaves every index of the hub at once; the collected events were already answered.
    attached.connection?.end('client-gone')
    closeListener?.()
  }
  const finish = (): void => answer(200, JSON.stringify(events))
  const onGone = (): void => {
    done = true
    clearTimeout(attached.timer)
    attached.connection?.end('client-gone')
  }

  const parser = createParser({
    onEvent(event) {
      if (events.length >= MAX_POLL_EVENTS) return
      events.push({ id: event.lastEventId, event: event.type, data: event.data })
      // Batch what arrives in the same turn (a replay, a burst), then answer.
      if (events.length >= MAX_POLL_EVENTS) finish()
      else batch ??= setImmediate(finish)
    },
    onError: () => undefined,
  })

  const transport: Transport = {
    open: () => undefined,
    reject(status, body, extra) {
      answer(status, body, extra ?? {})
    },
    write(chunk) {
      if (!done) parser.feed(chunk)
    },
    queuedBytes: 0,
    // The hub ends the stream (a finite topic's final event, a revoked client): answer now.
    end: () => finish(),
    destroy: () => finish(),
    drained: () => Promise.resolve(),
    onClose(listener) {
      closeListener = listener
    },
    remoteAddress: req.socket.remoteAddress,
  }
  res.once('close', onGone)
  attached.timer = setTimeout(finish, timeoutMs)
  attached.connection = hub.attach(transport, params)
  if (done) attached.connection.end('client-gone')
}
