import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { hubFixture, type TestHub } from '../helpers/hub-server.js'
import { waitFor } from '../helpers/wait.js'

let hub: TestHub
const fixture = hubFixture()

// Bounded by time: a few seconds in CI; SSEHUB_FUZZ_MS / SSEHUB_SOAK_MS run longer by hand.
const fuzzMs = Number(process.env.SSEHUB_FUZZ_MS ?? 3000)
const soakMs = Number(process.env.SSEHUB_SOAK_MS ?? 4000)

const contentTypes = [
  'application/json',
  'application/x-www-form-urlencoded',
  'text/plain',
  '',
  'application/json; charset=latin1',
  'multipart/form-data',
]
const body = fc.oneof(
  fc.json(),
  fc.string({ maxLength: 2000 }),
  fc.uint8Array({ maxLength: 4000 }).map((bytes) => Buffer.from(bytes)),
  fc
    .record(
      {
        topic: fc.oneof(
          fc.string(),
          fc.array(fc.string(), { maxLength: 5 }),
          fc.integer(),
          fc.constant(null),
        ),
        clientId: fc.oneof(fc.string(), fc.boolean()),
        all: fc.oneof(fc.boolean(), fc.string()),
        event: fc.oneof(fc.string(), fc.integer()),
        data: fc.jsonValue(),
        retry: fc.oneof(fc.integer(), fc.double(), fc.string()),
        close: fc.oneof(fc.boolean(), fc.string()),
      },
      { requiredKeys: [] },
    )
    .map((value) => JSON.stringify(value)),
)

// A real garbage collection, so that heap figures measure what is kept, not what is not yet freed.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** Heap kept after a full collection: what the hub retains, not garbage not yet collected. */
function retainedHeap(): number {
  gc()
  return process.memoryUsage().heapUsed
}

describe('fuzzing POST /publish', () => {
  it(
    'answers every random body and header with 200 or a JSON 4xx, and stays up with bounded memory',
    async () => {
      hub = await fixture.start({ publishRatePerSecond: null, maxBodyBytes: 2048 })
      // A subscriber that checks each line as it arrives and keeps none (a long run by hand would
      // otherwise measure the test's own buffer, not the hub's memory).
      const malformed: string[] = []
      let tail = ''
      let opened = false
      const sub = fixture.track(
        request(`${hub.url}/events?topic=t`, (res) => {
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => {
            const lines = (tail + chunk).split('\n')
            tail = lines.pop()!
            for (const line of lines) {
              if (line.startsWith('id: ')) opened = true
              if (!/^(data: |id: |retry: |event: |$|:)/.test(line))
                malformed.push(line.slice(0, 80))
            }
          })
        }).end(),
      )
      await waitFor(() => opened, 'the subscriber to open')
      const before = retainedHeap()
      const statuses = new Map<number, number>()
      let requests = 0
      const random = fc.sample(
        fc.tuple(body, fc.constantFrom(...contentTypes), fc.string({ maxLength: 40 })),
        { numRuns: 100_000, seed: 42 },
      )
      // After the sampling (seconds on a loaded machine): the whole budget goes to requests.
      const deadline = Date.now() + fuzzMs
      for (const [payload, contentType, extraHeader] of random) {
        if (Date.now() > deadline) break
        const headers: Record<string, string> = {
          'x-fuzz': extraHeader.replace(/[^\x20-\x7e]/g, ''),
        }
        if (contentType !== '') headers['content-type'] = contentType
        const response = await fetch(`${hub.url}/publish`, {
          method: 'POST',
          headers,
          body: payload,
        })
        const text = await response.text()
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
        expect([200, 400, 413, 415]).toContain(response.status)
        const json = JSON.parse(text) as { id?: string; error?: { code: string; message: string } }
        if (response.status === 200) expect(typeof json.id).toBe('string')
        else expect(json.error?.code).toMatch(/^ERR_SSE_/)
        requests++
      }
      expect(requests).toBeGreaterThan(100)
      expect(statuses.get(400)).toBeGreaterThan(0)
      expect((await fetch(`${hub.url}/healthz`)).status).toBe(200)
      // The history is bounded (10,000 events of at most 2 KiB here), so what the hub keeps is too.
      expect(retainedHeap() - before).toBeLessThan(64 * 1024 * 1024)
      // Whatever was accepted reached the subscriber as well-formed events only.
      expect(malformed).toEqual([])
      sub.destroy()
    },
    fuzzMs + 30_000,
  )
})

describe('soak: connections that vanish without a FIN', () => {
  it(
    'leaves no connection, index entry or timer behind',
    async () => {
      hub = await fixture.start({
        heartbeatMs: 200,
        publishRatePerSecond: null,
        maxConnectionsPerIp: null,
      })
      const port = Number(new URL(hub.url).port)
      const timersBefore = process
        .getActiveResourcesInfo()
        .filter((name) => name === 'Timeout').length
      gc()
      const heapBefore = process.memoryUsage().heapUsed
      const deadline = Date.now() + soakMs
      let opened = 0
      let published = 0
      while (Date.now() < deadline) {
        // A wave of 50 connections on random topics and client ids...
        const wave: Socket[] = []
        for (let i = 0; i < 50; i++) {
          const socket = connect(port, '127.0.0.1')
          socket.on('error', () => {})
          socket.write(
            `GET /events?topic=t${i % 7}&clientId=c${opened % 13} HTTP/1.1\r\nHost: x\r\n\r\n`,
          )
          wave.push(socket)
          opened++
        }
        await waitFor(() => hub.server.hub.stats().connections === 50, 'the wave to connect')
        for (let i = 0; i < 5; i++) {
          await hub.server.hub.publish({ topic: `t${i}`, data: 'x'.repeat(100) })
          published++
        }
        // ...vanishes with a RST, no FIN, as when a network drops or a phone sleeps.
        for (const socket of wave) socket.resetAndDestroy()
        await waitFor(() => hub.server.hub.stats().connections === 0, 'the wave to be forgotten')
      }
      await waitFor(
        () => hub.server.hub.stats().connections === 0,
        'every connection to be forgotten',
        10_000,
      )
      const stats = hub.server.hub.stats()
      expect(stats).toMatchObject({ connections: 0, topics: 0, clientIds: 0 })
      expect(stats.closed['client-gone']).toBe(opened)
      expect(opened).toBeGreaterThan(200)
      expect(published).toBeGreaterThan(20)
      const sockets = await new Promise<number>((resolve) =>
        hub.server.server.getConnections((_e, count) => resolve(count)),
      )
      expect(sockets).toBe(0)
      // No timer per connection: the hub's one timer is all that remains.
      expect(
        process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length,
      ).toBeLessThanOrEqual(timersBefore)
      gc()
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(20 * 1024 * 1024)
    },
    soakMs + 60_000,
  )
})
