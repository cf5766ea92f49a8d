import { afterEach } from 'vitest'
import { createHubServer, type HubServer, type HubServerOptions } from '../../src/server/server.js'
import { openStream, type RawStream } from './raw-stream.js'

/** A hub server on a free loopback port. */
export interface TestHub {
  readonly url: string
  readonly server: HubServer
  close(): Promise<void>
  publish(body: unknown, headers?: Record<string, string>): Promise<{ status: number; json: any }>
}

/** Starts a hub server on port 0 (heartbeats off unless asked, so byte assertions are exact). */
export async function startHub(options: HubServerOptions = {}): Promise<TestHub> {
  const server = createHubServer({ heartbeatMs: null, ...options })
  const address = await server.listen(0, '127.0.0.1')
  const url = `http://127.0.0.1:${address.port}`
  return {
    url,
    server,
    close: () => server.close(),
    async publish(body, headers = {}) {
      const response = await fetch(`${url}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      })
      const text = await response.text()
      return { status: response.status, json: text === '' ? null : JSON.parse(text) }
    },
  }
}

/** Anything a test opens and must close. */
interface Closeable {
  close?(): void
  destroy?(): void
}

/**
 * Per-file fixture for tests over real HTTP: `start()` a hub, `stream()` a subscription, `track()`
 * anything else; everything is closed after each test.
 */
export function hubFixture(): {
  start(options?: HubServerOptions): Promise<TestHub>
  stream(path: string, headers?: Record<string, string>): Promise<RawStream>
  track<T extends Closeable>(closeable: T): T
} {
  let current: TestHub | undefined
  const open: Closeable[] = []
  afterEach(async () => {
    for (const item of open.splice(0)) {
      item.close?.()
      item.destroy?.()
    }
    await current?.close()
    current = undefined
  })
  return {
    async start(options) {
      current = await startHub(options)
      return current
    },
    async stream(path, headers) {
      if (current === undefined) throw new Error('start() a hub first')
      return this.track(await openStream(current.url + path, headers))
    },
    track(closeable) {
      open.push(closeable)
      return closeable
    },
  }
}
