import { createHubServer, type HubServer, type HubServerOptions } from '../../src/server/server.js'

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
