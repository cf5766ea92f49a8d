/**
 * What it costs to carry publications from the primary to the workers, three ways, in one run:
 *
 * - `send-each`: `process.send(message)` per publication per worker (node:cluster's channel,
 *   JSON-serialized by Node for every worker);
 * - `send-batch`: one `process.send` per turn of the loop per worker, carrying the turn's
 *   publications as an array (serialized again for every worker);
 * - `socket`: what `ssehub serve --workers` does: each publication serialized once, its line
 *   written to every worker over a socketpair, one write per turn (src/broker/ipc-channel.ts).
 *
 * CPU of the primary and of the workers per publication delivered to one worker, from
 * process.cpuUsage().
 *
 *   npx tsx bench/workers/ipc.ts [--events 200000] [--batch 100] [--bytes 200] [--workers 2]
 */
import { fork, type ChildProcess } from 'node:child_process'
import { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { fileURLToPath } from 'node:url'

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? fallback : Number(process.argv[i + 1])
}
const EVENTS = arg('events', 200_000)
const BATCH = arg('batch', 100)
const BYTES = arg('bytes', 200)
const WORKERS = arg('workers', 2)
type Mode = 'send-each' | 'send-batch' | 'socket'

if (process.argv.includes('--child')) {
  // A worker: count publications, report CPU when told.
  let received = 0
  let partial = ''
  const start = process.cpuUsage()
  const link = new Socket({ fd: 4, readable: true, writable: true })
  link.setEncoding('utf8')
  link.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n')
    partial = lines.pop()!
    for (const line of lines) {
      JSON.parse(line)
      received++
    }
  })
  process.on('message', (message: { t?: string; b?: unknown[] }) => {
    if (message.t === 'p') received++
    else if (message.t === 'b') received += message.b!.length
    else if (message.t === 'done?') {
      const cpu = process.cpuUsage(start)
      process.send!({ t: 'count', received, cpuUs: cpu.user + cpu.system })
    }
  })
} else {
  const publication = (n: number): object => ({
    id: `abc-${n}`,
    keys: ['topic'],
    data: 'x'.repeat(BYTES),
    close: false,
    time: 1_700_000_000_000,
  })
  const results: Record<string, unknown>[] = []
  for (const mode of [
    'send-each',
    'send-batch',
    'socket',
    'send-each',
    'send-batch',
    'socket',
  ] as Mode[]) {
    const children: ChildProcess[] = Array.from({ length: WORKERS }, () =>
      fork(fileURLToPath(import.meta.url), ['--child'], {
        execArgv: process.execArgv,
        stdio: ['ignore', 'inherit', 'inherit', 'ipc', 'pipe'],
      }),
    )
    await new Promise((resolve) => setTimeout(resolve, 500))
    const start = process.cpuUsage()
    const began = Date.now()
    for (let sent = 0; sent < EVENTS; sent += BATCH) {
      const batch = Array.from({ length: BATCH }, (_, i) => publication(sent + i))
      for (const child of children) {
        if (mode === 'send-each') for (const p of batch) child.send({ t: 'p', p })
        else if (mode === 'send-batch') child.send({ t: 'b', b: batch })
      }
      if (mode === 'socket') {
        const lines = batch.map((p, i) => JSON.stringify({ t: 'p', n: sent + i, p }))
        const text = lines.join('\n') + '\n'
        for (const child of children) (child.stdio[4] as Duplex).write(text)
      }
      // One batch per turn of the loop, as the hub's publications arrive.
      await new Promise((resolve) => setImmediate(resolve))
    }
    const primary = process.cpuUsage(start)
    const counts = await Promise.all(
      children.map(
        (child) =>
          new Promise<{ received: number; cpuUs: number }>((resolve) => {
            const ask = (): void => {
              child.once('message', (m: { received: number; cpuUs: number }) =>
                m.received >= EVENTS ? resolve(m) : setTimeout(ask, 50),
              )
              child.send({ t: 'done?' })
            }
            ask()
          }),
      ),
    )
    const ms = Date.now() - began
    for (const child of children) child.kill()
    const delivered = EVENTS * WORKERS
    const row = {
      mode,
      events: EVENTS,
      workers: WORKERS,
      bytes: BYTES,
      batch: BATCH,
      ms,
      primaryUsPerDelivery: +((primary.user + primary.system) / delivered).toFixed(3),
      workerUsPerDelivery: +(counts.reduce((s, c) => s + c.cpuUs, 0) / delivered).toFixed(3),
    }
    console.log(JSON.stringify(row))
    results.push(row)
  }
}
