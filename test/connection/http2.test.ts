import { connect, createServer, type Http2Server } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { createHub, type Hub } from '../../src/index.js'
import { waitFor } from '../helpers/wait.js'

let server: Http2Server | undefined
let hub: Hub | undefined
afterEach(async () => {
  await hub?.close()
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
  server = undefined
})

describe('node:http2 compat responses', () => {
  it('streams over HTTP/2 without hop-by-hop headers', async () => {
    const h = createHub({ heartbeatMs: null, epoch: 'e1' })
    hub = h
    const srv = createServer((req, res) => h.subscribe(req, res))
    server = srv
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
    const port = (srv.address() as AddressInfo).port
    const session = connect(`http://127.0.0.1:${port}`)
    const stream = session.request({ ':path': '/events?topic=a' })
    let headers: Record<string, unknown> = {}
    let text = ''
    stream.on('response', (h2) => (headers = h2))
    stream.setEncoding('utf8').on('data', (chunk: string) => (text += chunk))
    await waitFor(() => text.includes('id: e1-0\n\n'), 'stream open')
    await h.publish({ topic: 'a', data: 'over h2' })
    await waitFor(() => text.includes('over h2'), 'event')
    expect(headers[':status']).toBe(200)
    expect(headers['content-type']).toBe('text/event-stream')
    expect(headers.connection).toBeUndefined()
    expect(headers['transfer-encoding']).toBeUndefined()
    expect(text).toBe('retry: 2000\n\nid: e1-0\n\nid: e1-1\ndata: over h2\n\n')
    stream.close()
    await waitFor(() => h.stats().connections === 0, 'close seen by the hub')
    session.close()
  })
})
