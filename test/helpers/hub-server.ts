import { afterEach } from 'vitest'
import { createHubServer, type HubServer, type HubServerOptions } from '../../src/server/server.js'
import {
  SHOWCASE_OPTION_NAMES,
  createShowcase,
  type ShowcaseOptions,
} from '../../src/showcase/index.js'
import { openStream, type RawStream } from './raw-stream.js'

/** A hub server on a free loopback port. */
export interface TestHub {
  readonly url: string
  readonly server: HubServer
  close(): Promise<void>
  publish(body: unknown, headers?: Record<string, string>): Promise<{ status: number; json: any }>
}

/**
 * The front the server suites run against: `fast` (the socket-level fast front, the default) or
 * `node` (node:http alone). vitest.config.ts runs the HTTP suites once per front.
 */
export const TEST_FRONT: 'fast' | 'node' =
  process.env.SSEHUB_TEST_FRONT === 'node' ? 'node' : 'fast'

/** A test hub's options: the server's, plus the showcase's (mounted as `ssehub serve` does). */
export type TestHubOptions = HubServerOptions & ShowcaseOptions

/**
 * Starts a hub server on port 0 (heartbeats off unless asked, so byte assertions are exact), on
 * {@link TEST_FRONT} unless `fastPath` is given, with the showcase mounted as `ssehub serve` does.
 */
export async function startHub(options: TestHubOptions = {}): Promise<TestHub> {
  const showcase: Record<string, unknown> = {}
  const rest: Record<string, unknown> = { ...options }
  for (const name of SHOWCASE_OPTION_NAMES) {
    if (rest[name] !== undefined) showcase[name] = rest[name]
    delete rest[name]
  }
  const server = createHubServer({
    heartbeatMs: null,
    fastPath: TEST_FRONT === 'fast',
    mounts: [createShowcase(showcase)],
    ...(rest as HubServerOptions),
  })
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
  start(options?: TestHubOptions): Promise<TestHub>
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
