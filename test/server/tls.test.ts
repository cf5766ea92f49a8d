import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { connect } from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeSelfSigned } from '../helpers/self-signed.js'
import { afterEach, describe, expect, it } from 'vitest'
import { createHubServer, type HubServer } from '../../src/server/server.js'
import { parseServeArgs } from '../../src/cli/serve-options.js'

let server: HubServer | undefined
afterEach(async () => {
  await server?.close()
  server = undefined
})

describe('TLS and HTTP/2', () => {
  it('--tls-cert/--tls-key serve an SSE stream over HTTP/2, without hop-by-hop headers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ssehub-tls-'))
    try {
      const files = writeSelfSigned(dir)
      const config = parseServeArgs(['--tls-cert', files.cert, '--tls-key', files.key], {})
      expect(config.options.tlsCert).toBe(readFileSync(files.cert, 'utf8'))
      server = createHubServer({ ...config.options, heartbeatMs: null })
      expect(server.protocol).toBe('https')
      const { port } = await server.listen(0, '127.0.0.1')
      const session = connect(`https://localhost:${port}`, { rejectUnauthorized: false })
      try {
        const stream = session.request({ ':path': '/events?topic=a' })
        const headers = await new Promise<Record<string, unknown>>((resolve) =>
          stream.once('response', resolve),
        )
        expect(headers[':status']).toBe(200)
        expect(headers['content-type']).toContain('text/event-stream')
        expect(headers.connection).toBeUndefined()
        stream.setEncoding('utf8')
        let text = ''
        stream.on('data', (chunk: string) => (text += chunk))
        await server.hub.publish({ topic: 'a', data: 'over h2' })
        await expect.poll(() => text, { timeout: 5000 }).toContain('data: over h2\n\n')
        stream.close()
      } finally {
        session.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a certificate without its key', () => {
    expect(() => createHubServer({ tlsCert: 'x' })).toThrow(TypeError)
  })
})
