import { request, type IncomingHttpHeaders } from 'node:http'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { waitFor } from './wait.js'

/** One SSE response read over a real socket: the exact bytes, and events as an independent parser sees them. */
export interface RawStream {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  /** Everything received so far, as text. */
  text(): string
  /** Events parsed so far (by `eventsource-parser`, an independent implementation). */
  readonly events: EventSourceMessage[]
  /** Resolves when the server ended the response. */
  readonly ended: Promise<void>
  /** True once the server ended the response. */
  isEnded(): boolean
  /** Waits until `text()` contains `needle`. */
  waitForText(needle: string, timeoutMs?: number): Promise<void>
  /** Waits until at least `count` events arrived; returns them. */
  waitForEvents(count: number, timeoutMs?: number): Promise<EventSourceMessage[]>
  /** Last event id seen by the parser (id-only frames included). */
  lastEventId(): string | undefined
  /** Drops the connection (the client goes away). */
  close(): void
}

/** Opens `GET url` with `headers` and resolves once the status line arrived. */
export function openStream(url: string, headers: Record<string, string> = {}): Promise<RawStream> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      let text = ''
      let ended = false
      let lastId: string | undefined
      let partial = ''
      const events: EventSourceMessage[] = []
      const parser = createParser({
        onEvent: (event) => events.push(event),
      })
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        text += chunk
        parser.feed(chunk)
        // eventsource-parser reports ids only on dispatched events; track id-only frames too,
        // on whole lines only (a chunk may end in the middle of an id).
        const lines = (partial + chunk).split(/\r\n|\r|\n/)
        partial = lines.pop()!
        for (const line of lines)
          if (line.startsWith('id:')) lastId = line.slice(line.startsWith('id: ') ? 4 : 3)
      })
      const endedPromise = new Promise<void>((done) => {
        res.on('end', () => {
          ended = true
          done()
        })
        res.on('close', () => {
          ended = true
          done()
        })
      })
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        text: () => text,
        events,
        ended: endedPromise,
        isEnded: () => ended,
        waitForText: async (needle, timeoutMs) => {
          await waitFor(
            () => text.includes(needle),
            `text ${JSON.stringify(needle)} in ${JSON.stringify(text)}`,
            timeoutMs,
          )
        },
        waitForEvents: async (count, timeoutMs) => {
          await waitFor(
            () => events.length >= count,
            `${count} events (have ${events.length}: ${JSON.stringify(text)})`,
            timeoutMs,
          )
          return events
        },
        lastEventId: () => lastId,
        close: () => {
          req.destroy()
          res.destroy()
        },
      })
    })
    req.on('error', reject)
    req.end()
  })
}
