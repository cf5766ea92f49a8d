/**
 * A transport is one HTTP response carrying an event stream: the seam between a {@link Connection}
 * and a server framework. Adapters exist for node:http / node:http2 compat responses
 * (`node-http.ts`) and for fetch-style `Response`s (`fetch.ts`).
 */
export interface Transport {
  /** Sends `200 text/event-stream` with the stream headers. Called at most once. */
  open(): void
  /**
   * Answers with an error or empty status instead of a stream (`204`, `400`, `503`...) and ends.
   * `body` is JSON text or `undefined` for no body.
   */
  reject(status: number, body: string | undefined, headers?: Readonly<Record<string, string>>): void
  /**
   * Queues `chunk` for the peer. Never throws: a failed write closes the transport. The connection
   * coalesces the frames of one loop turn, so each call is one socket write's worth.
   */
  write(chunk: Uint8Array): void
  /** Bytes accepted by {@link Transport.write} that the peer has not taken yet. */
  readonly queuedBytes: number
  /** Ends the stream gracefully after queued bytes. */
  end(): void
  /** Drops the stream at once (queued bytes are discarded). */
  destroy(): void
  /**
   * Resolves when the peer took the queued bytes (or the stream closed): the replay of a long
   * history waits on it instead of buffering the whole history in memory.
   */
  drained(): Promise<void>
  /** Registers the one listener called once when the peer is gone or the stream ended. */
  onClose(listener: () => void): void
  /** The peer's address, when known. */
  readonly remoteAddress: string | undefined
}

/** The response headers of every event stream. No hop-by-hop headers: they are invalid on HTTP/2. */
export const streamHeaders: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
}

/**
 * Resolves on the first of `writable`'s 'drain' and `response`'s 'close', removing both listeners.
 * With `timeoutMs`, a peer that has not read by then is cut (`response` destroyed, which closes
 * it and so resolves): a client that pipelines requests and never reads holds nothing for long.
 */
export function drainOrClose(
  writable: NodeJS.EventEmitter,
  response: NodeJS.EventEmitter & { destroy(): unknown },
  timeoutMs?: number,
): Promise<void> {
  return new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined
    const done = (): void => {
      clearTimeout(timer)
      writable.off('drain', done)
      response.off('close', done)
      resolve()
    }
    writable.once('drain', done)
    response.once('close', done)
    if (timeoutMs !== undefined) timer = setTimeout(() => response.destroy(), timeoutMs)
  })
}
