import { request, type ClientRequest, type IncomingMessage } from 'node:http'
import { createGunzip } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { acceptsGzip } from '../../src/server/gzip.js'
import { hubFixture } from '../helpers/hub-server.js'

const fixture = hubFixture()

describe('gzip event streams', () => {
  it('compresses the stream and flushes each event at once', async () => {
    const hub = await fixture.start({ gzip: true })
    const { res, req } = await new Promise<{
      res: IncomingMessage
      req: ClientRequest
    }>((resolve, reject) => {
      const req = request(`${hub.url}/events?topic=a`, { headers: { 'accept-encoding': 'gzip' } })
      req.on('response', (res) => resolve({ res, req }))
      req.on('error', reject)
      req.end()
    })
    fixture.track(req)
    expect(res.headers['content-encoding']).toBe('gzip')
    expect(res.headers.connection === undefined || res.headers.connection === 'keep-alive').toBe(
      true,
    )
    let text = ''
    const gunzip = res.pipe(createGunzip())
    gunzip.setEncoding('utf8')
    gunzip.on('data', (chunk: string) => (text += chunk))
    await expect.poll(() => hub.server.hub.subscriberCount('a'), { timeout: 5000 }).toBe(1)
    const { id } = await hub.server.hub.publish({ topic: 'a', data: 'zipped' })
    await expect.poll(() => text, { timeout: 5000 }).toContain(`id: ${id}\ndata: zipped\n\n`)
    const second = await hub.server.hub.publish({ topic: 'a', event: 'x', data: 'again' })
    await expect
      .poll(() => text, { timeout: 5000 })
      .toContain(`event: x\nid: ${second.id}\ndata: again\n\n`)
  })

  it('sends plain text to clients that do not accept gzip, and when the option is off', async () => {
    for (const [gzip, encoding] of [
      [true, undefined],
      [false, 'gzip'],
    ] as const) {
      const hub = await fixture.start({ gzip })
      const res = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = request(`${hub.url}/events?topic=a`, {
          headers: encoding === undefined ? {} : { 'accept-encoding': encoding },
        })
        fixture.track(req)
        req.on('response', resolve)
        req.on('error', reject)
        req.end()
      })
      expect(res.headers['content-encoding']).toBeUndefined()
      res.destroy()
      await hub.close()
    }
    expect(acceptsGzip({ headers: { 'accept-encoding': 'gzip;q=0, br' } })).toBe(false)
    expect(acceptsGzip({ headers: { 'accept-encoding': 'br, gzip' } })).toBe(true)
    expect(acceptsGzip({ headers: {} })).toBe(false)
  })
})
