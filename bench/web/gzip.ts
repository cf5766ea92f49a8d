/**
 * Gzip of event streams: bytes on the wire and server CPU, with and without `gzip: true`.
 * One hub server in this process; `CONNECTIONS` raw HTTP/1.1 subscribers that read and count bytes;
 * `EVENTS` JSON events (a typical ~200-byte price/status payload) published to all of them.
 * Run: `npx tsx bench/web/gzip.ts` (results in bench/web/results/gzip.md).
 */
import { connect, type Socket } from 'node:net'
import { createHubServer } from '../../src/server/server.js'

const CONNECTIONS = Number(process.env.CONNECTIONS ?? 200)
const EVENTS = Number(process.env.EVENTS ?? 500)

interface Result {
  gzip: boolean
  bytesPerEvent: number
  cpuMs: number
  cpuUsPerDelivery: number
  rssMiB: number
}

function payload(i: number): unknown {
  return {
    seq: i,
    symbol: ['ACME', 'GLOBEX', 'INITECH', 'UMBRELLA'][i % 4],
    price: 100 + Math.sin(i) * 10,
    change: Math.cos(i),
    volume: 1000 + i * 7,
    at: new Date(1_700_000_000_000 + i * 300).toISOString(),
    status: 'open',
  }
}

async function run(gzip: boolean): Promise<Result> {
  const server = createHubServer({ heartbeatMs: null, gzip, publishRatePerSecond: null })
  const { port } = await server.listen(0, '127.0.0.1')
  const sockets: Socket[] = []
  let bytes = 0
  for (let i = 0; i < CONNECTIONS; i++) {
    const socket = connect(port, '127.0.0.1')
    socket.write(
      `GET /events?topic=bench HTTP/1.1\r\nhost: x\r\n${gzip ? 'accept-encoding: gzip\r\n' : ''}\r\n`,
    )
    socket.on('data', (chunk: Buffer) => (bytes += chunk.length))
    sockets.push(socket)
  }
  const deadline = Date.now() + 10_000
  while (server.hub.subscriberCount('bench') < CONNECTIONS && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  await new Promise((resolve) => setTimeout(resolve, 100))
  const base = bytes
  const cpu = process.cpuUsage()
  for (let i = 0; i < EVENTS; i++) {
    await server.hub.publish({ topic: 'bench', event: 'price', data: payload(i) })
    if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  // Wait until the bytes stop growing: every frame was read.
  let last = -1
  while (bytes !== last) {
    last = bytes
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  const used = process.cpuUsage(cpu)
  const cpuMs = (used.user + used.system) / 1000
  const rssMiB = process.memoryUsage().rss / 2 ** 20
  for (const socket of sockets) socket.destroy()
  await server.close()
  return {
    gzip,
    bytesPerEvent: (bytes - base) / (EVENTS * CONNECTIONS),
    cpuMs,
    cpuUsPerDelivery: (cpuMs * 1000) / (EVENTS * CONNECTIONS),
    rssMiB,
  }
}

const results = [await run(false), await run(true)]
console.log(
  `| gzip | bytes/event on the wire | server CPU (ms) | CPU per delivery (µs) | RSS after (MiB) |`,
)
console.log(`| --- | --- | --- | --- | --- |`)
for (const r of results) {
  console.log(
    `| ${r.gzip ? 'on' : 'off'} | ${r.bytesPerEvent.toFixed(1)} | ${r.cpuMs.toFixed(0)} | ${r.cpuUsPerDelivery.toFixed(2)} | ${r.rssMiB.toFixed(0)} |`,
  )
}
console.log(`\n${CONNECTIONS} connections x ${EVENTS} events, Node ${process.version}`)
