import { connect, type Socket } from 'node:net'

/** One HTTP/1.1 response read off a raw socket. */
export interface RawResponse {
  readonly status: number
  /** Header lines in order, names in lower case, values trimmed. */
  readonly headers: readonly (readonly [string, string])[]
  /** The body, de-chunked (for an unfinished chunked body: the whole chunks so far). */
  readonly body: Buffer
  /** False when the body was still arriving (an event stream, or a cut-off answer). */
  readonly complete: boolean
}

/** Responses parsed from the bytes a server sent, and what did not parse as a response. */
export interface ParsedResponses {
  readonly responses: RawResponse[]
  /** Bytes after the last response that are not (the start of) a response. */
  readonly rest: Buffer
}

const CRLF = Buffer.from('\r\n')
const HEAD_END = Buffer.from('\r\n\r\n')

/** The value of header `name` (lower case) in `response`, if present. */
export function headerOf(response: RawResponse, name: string): string | undefined {
  return response.headers.find(([key]) => key === name)?.[1]
}

/**
 * Parses the HTTP/1.1 responses in `bytes` (everything a server sent on one connection, in
 * order): status line, headers, then a body framed by content-length, chunked encoding, or the
 * end of the connection (`ended`). 1xx, 204 and 304 answers have no body. An unfinished response
 * is returned with `complete: false` and ends the list.
 */
export function parseResponses(bytes: Buffer, ended: boolean): ParsedResponses {
  const responses: RawResponse[] = []
  let at = 0
  while (at < bytes.length) {
    const headEnd = bytes.indexOf(HEAD_END, at)
    if (headEnd === -1) break
    const lines = bytes.toString('latin1', at, headEnd).split('\r\n')
    const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? '')
    if (status === null) break
    const headers = lines.slice(1).map((line): [string, string] => {
      const colon = line.indexOf(':')
      return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]
    })
    const code = Number(status[1])
    const response = (body: Buffer, complete: boolean): RawResponse => ({
      status: code,
      headers,
      body,
      complete,
    })
    let bodyStart = headEnd + 4
    const length = headers.find(([name]) => name === 'content-length')?.[1]
    const chunked = headers.some(
      ([name, value]) => name === 'transfer-encoding' && /chunked/i.test(value),
    )
    if ((code >= 100 && code < 200) || code === 204 || code === 304) {
      responses.push(response(Buffer.alloc(0), true))
      at = bodyStart
    } else if (chunked) {
      const chunks: Buffer[] = []
      let complete = false
      for (;;) {
        const sizeEnd = bytes.indexOf(CRLF, bodyStart)
        if (sizeEnd === -1) break
        const size = parseInt(bytes.toString('latin1', bodyStart, sizeEnd), 16)
        if (Number.isNaN(size)) break
        if (size === 0) {
          // The last chunk, then (no trailers from our servers) the final CRLF.
          if (bytes.length < sizeEnd + 4) break
          bodyStart = sizeEnd + 4
          complete = true
          break
        }
        if (bytes.length < sizeEnd + 2 + size + 2) break
        chunks.push(bytes.subarray(sizeEnd + 2, sizeEnd + 2 + size))
        bodyStart = sizeEnd + 2 + size + 2
      }
      responses.push(response(Buffer.concat(chunks), complete))
      if (!complete) return { responses, rest: Buffer.alloc(0) }
      at = bodyStart
    } else if (length !== undefined) {
      const size = Number(length)
      const complete = bytes.length >= bodyStart + size
      responses.push(response(bytes.subarray(bodyStart, bodyStart + size), complete))
      if (!complete) return { responses, rest: Buffer.alloc(0) }
      at = bodyStart + size
    } else {
      // Framed by the end of the connection.
      responses.push(response(bytes.subarray(bodyStart), ended))
      return { responses, rest: Buffer.alloc(0) }
    }
  }
  return { responses, rest: bytes.subarray(at) }
}

/** How a client writes its bytes: at once, one byte per event-loop turn, or cut at offsets. */
export type WritePlan = 'whole' | 'bytes' | readonly number[]

/** What a raw exchange observed. */
export interface Exchange {
  readonly responses: RawResponse[]
  readonly rest: Buffer
  /** The server ended or reset the connection. */
  readonly closed: boolean
  /** Every byte received. */
  readonly received: Buffer
}

/** Options of {@link RawConnection.read}. */
export interface ReadOptions {
  /**
   * Stop once no byte arrived for this long (ms), after the writes finished. Local answers take
   * well under a millisecond, so a quiet period means "nothing more is coming now"; it is the
   * only way to see that a server kept a connection open without answering. `null`: wait for
   * the close (or the deadline) only.
   * @default 300
   */
  readonly quietMs?: number | null
  /** Give up after this long (ms) in all. @default 5000 */
  readonly deadlineMs?: number
  /** Stop as soon as this holds for the responses so far. */
  readonly until?: (parsed: ParsedResponses) => boolean
}

/** A raw client connection: exact bytes out, parsed responses in. */
export class RawConnection {
  private received: Buffer[] = []
  private size = 0
  private closed = false
  private lastByteAt = Date.now()
  private readonly waiters = new Set<() => void>()
  readonly socket: Socket

  private constructor(socket: Socket) {
    this.socket = socket
    // Byte-by-byte writes must leave one by one (no Nagle coalescing).
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      this.received.push(chunk)
      this.size += chunk.length
      this.lastByteAt = Date.now()
      this.wake()
    })
    const onClose = (): void => {
      this.closed = true
      this.wake()
    }
    socket.on('end', onClose)
    socket.on('close', onClose)
    socket.on('error', onClose)
  }

  /** Connects to `port` on loopback. */
  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => resolve(new RawConnection(socket)))
      socket.once('error', reject)
    })
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter()
  }

  /** Writes `bytes` as `plan` says; resolves once they left this process (or the socket died). */
  async write(bytes: Buffer, plan: WritePlan = 'whole'): Promise<void> {
    const cuts =
      plan === 'whole'
        ? []
        : plan === 'bytes'
          ? Array.from({ length: bytes.length - 1 }, (_, i) => i + 1)
          : [...plan].filter((cut) => cut > 0 && cut < bytes.length).sort((a, b) => a - b)
    let from = 0
    for (const to of [...cuts, bytes.length]) {
      if (to <= from) continue
      if (this.closed || this.socket.destroyed) return
      await new Promise<void>((resolve) =>
        this.socket.write(bytes.subarray(from, to), () => resolve()),
      )
      from = to
      // One write per event-loop turn, so that the server reads them apart.
      if (to < bytes.length) await new Promise((resolve) => setImmediate(resolve))
    }
    this.lastByteAt = Math.max(this.lastByteAt, Date.now())
  }

  /** Ends our side of the connection (a half-close: the server may still answer). */
  halfClose(): void {
    this.socket.end()
  }

  /** Everything received so far, parsed. */
  parsed(): ParsedResponses {
    return parseResponses(Buffer.concat(this.received, this.size), this.closed)
  }

  /** Waits until the server closes, `until` holds, the quiet period passes or the deadline. */
  async read(options: ReadOptions = {}): Promise<Exchange> {
    const quietMs = options.quietMs === undefined ? 300 : options.quietMs
    const deadline = Date.now() + (options.deadlineMs ?? 5_000)
    this.lastByteAt = Math.max(this.lastByteAt, Date.now())
    for (;;) {
      if (this.closed) break
      if (options.until?.(this.parsed()) === true) break
      const now = Date.now()
      if (now >= deadline) break
      const quietEnd = quietMs === null ? Infinity : this.lastByteAt + quietMs
      if (now >= quietEnd) break
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer)
          this.waiters.delete(done)
          resolve()
        }
        const timer = setTimeout(done, Math.min(deadline, quietEnd) - now)
        this.waiters.add(done)
      })
    }
    const received = Buffer.concat(this.received, this.size)
    const { responses, rest } = parseResponses(received, this.closed)
    return { responses, rest, closed: this.closed, received }
  }

  isClosed(): boolean {
    return this.closed
  }

  destroy(): void {
    this.socket.destroy()
  }
}
