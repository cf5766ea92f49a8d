/**
 * The link between a worker process and the primary that owns the hub's broker: newline-delimited
 * JSON over a stream socket (the extra socketpair `ssehub serve --workers` gives each worker).
 *
 * Why a socketpair with our own framing rather than `process.send`: a publication is serialized
 * once in the primary and the same bytes are written to every worker that follows one of its
 * keys (`process.send` would serialize the message again per worker and wrap it in its own JSON
 * envelope); JSON never contains a raw newline, so a newline frames a message for free; and every
 * message between the two processes goes in one ordered stream, so a command (close a client)
 * never overtakes the publication sent before it. Writes are batched per turn of the event loop:
 * one `write(2)` carries every message of the turn.
 */
import type { Duplex } from 'node:stream'

/** Options of {@link IpcChannel}. */
export interface IpcChannelOptions {
  /**
   * How many bytes may wait to be written to the other process before the channel gives up on
   * it (a process that does not read: stuck, or far behind): the channel is destroyed and
   * `onClose` runs. The primary then restarts that worker; its clients reconnect and resume.
   * @default 67108864 (64 MiB)
   */
  readonly maxBufferedBytes?: number
  /**
   * How long one incoming line may be, in bytes (a publication's data is bounded by the
   * server's `maxBodyBytes`; a replay answer by the history): a longer line is a broken peer.
   * @default 268435456 (256 MiB)
   */
  readonly maxLineBytes?: number
}

/** The defaults of {@link IpcChannelOptions}. */
export const IPC_CHANNEL_DEFAULTS = Object.freeze({
  maxBufferedBytes: 64 * 1024 * 1024,
  maxLineBytes: 256 * 1024 * 1024,
})

/**
 * One end of the link: send messages (batched per turn), receive them one parsed object at a time.
 */
export class IpcChannel {
  /** Bytes written since the channel opened (for stats and the benchmark). */
  bytesOut = 0
  /** Bytes read since the channel opened. */
  bytesIn = 0
  /** Write batches (one per turn of the loop with something to send). */
  batchesOut = 0
  private out: (string | Buffer)[] = []
  private scheduled = false
  private partial = ''
  private closed = false
  private readonly maxBufferedBytes: number
  private readonly maxLineBytes: number

  constructor(
    private readonly socket: Duplex,
    private readonly onMessage: (message: unknown) => void,
    private readonly onClose: (error: Error | null) => void,
    options: IpcChannelOptions = {},
  ) {
    this.maxBufferedBytes = options.maxBufferedBytes ?? IPC_CHANNEL_DEFAULTS.maxBufferedBytes
    this.maxLineBytes = options.maxLineBytes ?? IPC_CHANNEL_DEFAULTS.maxLineBytes
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => this.read(chunk))
    socket.on('error', (error: Error) => this.close(error))
    socket.on('close', () => this.close(null))
    // The peer ended its side: nothing more will come, so the link is over.
    socket.on('end', () => this.close(null))
  }

  /** True once the link is closed (the other process exited or was given up on). */
  get isClosed(): boolean {
    return this.closed
  }

  /** Sends a message (serialized here). */
  send(message: object): void {
    this.sendLine(JSON.stringify(message))
  }

  /**
   * Sends an already serialized message (one JSON text, no newline): the primary serializes a
   * publication once and sends the same text to every worker that needs it.
   */
  sendLine(line: string): void {
    if (this.closed) return
    this.out.push(line, '\n')
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(() => this.flush())
    }
  }

  /** Closes the link (idempotent). */
  close(error: Error | null = null): void {
    if (this.closed) return
    this.closed = true
    this.out = []
    this.socket.destroy()
    this.onClose(error)
  }

  private flush(): void {
    this.scheduled = false
    if (this.closed || this.out.length === 0) return
    const text = this.out.join('')
    this.out = []
    this.bytesOut += text.length
    this.batchesOut++
    this.socket.write(text)
    if (this.socket.writableLength > this.maxBufferedBytes) {
      this.close(
        new Error(
          `the other process did not read ${this.socket.writableLength} bytes (maxBufferedBytes ${this.maxBufferedBytes})`,
        ),
      )
    }
  }

  private read(chunk: string): void {
    this.bytesIn += chunk.length
    let from = 0
    let end = chunk.indexOf('\n')
    while (end !== -1) {
      // The first line completes what the previous chunks left; `partial` is '' after it.
      const line = this.partial + chunk.slice(from, end)
      this.partial = ''
      from = end + 1
      let message: unknown
      try {
        message = JSON.parse(line)
      } catch (error) {
        this.close(new Error(`a malformed message (${(error as Error).message})`))
        return
      }
      this.onMessage(message)
      if (this.closed) return
      end = chunk.indexOf('\n', from)
    }
    this.partial += chunk.slice(from)
    if (this.partial.length > this.maxLineBytes)
      this.close(new Error(`a message over ${this.maxLineBytes} bytes`))
  }
}
