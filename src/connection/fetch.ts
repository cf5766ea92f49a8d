import { ErrorCodes, SseError, errorBody } from '../errors.js'
import { streamHeaders, type Transport } from './transport.js'

/** A {@link Transport} whose stream is a Web `Response`, for fetch-style frameworks. */
export interface FetchTransport extends Transport {
  /** Resolves with the `Response` to return from the route handler once the hub decided. */
  readonly response: Promise<Response>
}

/**
 * Creates a transport backed by a `ReadableStream`, for Hono, Next.js route handlers, Bun, Deno.
 * Queued bytes are counted by the stream's own queue (a strategy sized in bytes with a
 * high-water mark of 0, so `desiredSize` is minus the unread bytes).
 */
export function createFetchTransport(remoteAddress?: string): FetchTransport {
  let controller!: ReadableStreamDefaultController<Uint8Array>
  let closeListener: (() => void) | null = null
  let closed = false
  let decided = false
  let settle!: (response: Response) => void
  const response = new Promise<Response>((resolve) => (settle = resolve))
  const resolveResponse = (value: Response): void => {
    decided = true
    settle(value)
  }
  // Waiters for the consumer to pull (the stream's queue drained); bounded by the replay loop,
  // which waits on one at a time.
  let drainWaiters: (() => void)[] = []
  const wake = (): void => {
    const waiters = drainWaiters
    drainWaiters = []
    for (const waiter of waiters) waiter()
  }
  const fireClose = (): void => {
    if (closed) return
    closed = true
    wake()
    // Never leave a route handler waiting: a stream closed before the hub decided is a 503.
    if (!decided) {
      const error = new SseError(ErrorCodes.CLOSED, 'The hub closed the stream; reconnect.')
      resolveResponse(
        new Response(errorBody(error), {
          status: error.status,
          headers: { 'content-type': 'application/json', 'retry-after': '1' },
        }),
      )
    }
    const listener = closeListener
    closeListener = null
    listener?.()
  }
  const stream = new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c
      },
      pull() {
        wake()
      },
      cancel() {
        // The client went away (the framework cancels the body when the request aborts).
        fireClose()
      },
    },
    { highWaterMark: 0, size: (chunk) => chunk.byteLength },
  )
  return {
    response,
    open() {
      resolveResponse(new Response(stream, { status: 200, headers: streamHeaders }))
    },
    reject(status, body, headers = {}) {
      const all = new Headers(headers)
      if (body !== undefined) all.set('content-type', 'application/json; charset=utf-8')
      resolveResponse(
        new Response(status === 204 ? null : (body ?? null), { status, headers: all }),
      )
      fireClose()
    },
    write(chunk) {
      if (closed) return
      controller.enqueue(chunk)
    },
    get queuedBytes() {
      return closed ? 0 : -(controller.desiredSize ?? 0)
    },
    end() {
      if (closed) return
      controller.close()
      fireClose()
    },
    destroy() {
      if (closed) return
      controller.error(new Error('stream closed by the hub'))
      fireClose()
    },
    drained() {
      if (closed || (controller.desiredSize ?? 0) >= 0) return Promise.resolve()
      return new Promise<void>((resolve) => drainWaiters.push(resolve))
    },
    onClose(listener) {
      closeListener = listener
      if (closed) fireClose()
    },
    remoteAddress,
  }
}
