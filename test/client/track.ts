import {
  connect,
  type ClientListener,
  type ClientOptions,
  type ClosedInfo,
  type Connection,
  type ReconnectInfo,
} from '../../src/client/index.js'
import type { ParsedEvent } from '../../src/wire/parse.js'

/** A connection with every callback recorded in order. */
export interface Tracked {
  readonly connection: Connection
  /** One entry per callback: `open`, `event <data>`, `reconnecting <attempt>`, `closed <reason>`... */
  readonly log: string[]
  readonly events: ParsedEvent[]
  readonly reconnects: ReconnectInfo[]
  readonly comments: string[]
  readonly closed: ClosedInfo[]
  readonly failures: Error[]
  /** True once onClosed or onFailure was called. */
  ended(): boolean
}

/** Connects with a listener that records everything; `extra` callbacks run after recording. */
export function track(options: ClientOptions, extra: Partial<ClientListener> = {}): Tracked {
  const tracked = {
    log: [] as string[],
    events: [] as ParsedEvent[],
    reconnects: [] as ReconnectInfo[],
    comments: [] as string[],
    closed: [] as ClosedInfo[],
    failures: [] as Error[],
  }
  const connection = connect(options, {
    onOpen(response) {
      tracked.log.push(`open ${response.status}`)
      extra.onOpen?.(response)
    },
    onEvent(event) {
      tracked.events.push(event)
      tracked.log.push(`event ${event.data}`)
      extra.onEvent?.(event)
    },
    onComment(comment) {
      tracked.comments.push(comment)
      extra.onComment?.(comment)
    },
    onReconnecting(info) {
      tracked.reconnects.push(info)
      tracked.log.push(`reconnecting ${info.attempt}`)
      extra.onReconnecting?.(info)
    },
    onClosed(info) {
      tracked.closed.push(info)
      tracked.log.push(`closed ${info.reason}`)
      extra.onClosed?.(info)
    },
    onFailure(error) {
      tracked.failures.push(error)
      tracked.log.push(`failure ${error.message}`)
      extra.onFailure?.(error)
    },
  })
  return {
    ...tracked,
    connection,
    ended: () => tracked.closed.length + tracked.failures.length > 0,
  }
}

/** A URL on which nothing listens: a server started and closed at once. */
export async function deadUrl(): Promise<string> {
  const { createServer } = await import('node:net')
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return `http://127.0.0.1:${address.port}/gone`
}
