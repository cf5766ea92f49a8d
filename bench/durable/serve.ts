/**
 * `ssehub serve` with the durable store (each fsync policy) against `--store memory`, as users
 * run it (the built CLI, one process), interleaved in one run so that all see the same machine:
 *
 * - publish: 64 keep-alive connections, each with one publish in flight (64 publishers), for a
 *   few seconds: publishes/s and the latency of each (request written to answer read); then one
 *   publisher alone, one publish at a time (its rate is one over the latency);
 * - fan-out: 500 streams on one topic, 200 publishes/s to it (100,000 deliveries/s): the delay
 *   from publish to delivery on every stream (p50/p99) and the server's CPU per delivered event.
 *
 *   npm run build && npx tsx bench/durable/serve.ts [--seconds 4] [--rounds 2] [--publishers 64]
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const bin = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))
const arg = (name: string, fallback: string): string => {
  const index = process.argv.indexOf(`--${name}`)
  return index === -1 ? fallback : process.argv[index + 1]!
}
const seconds = Number(arg('seconds', '4'))
const rounds = Number(arg('rounds', '2'))
const only = arg('only', '')
// Concurrent publishers (keep-alive connections with one publish in flight each): a group
// commit takes one fsync per batch, so the durable rate grows with them.
const publishers = Number(arg('publishers', '64'))

const configs: Record<string, string[]> = {
  memory: ['--store', 'memory'],
  'durable, fsync always (default)': ['--fsync', 'always'],
  'durable, fsync never': ['--fsync', 'never'],
}

async function startHub(
  args: string[],
): Promise<{ port: number; child: ChildProcess; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-bench-'))
  const withDir = args.includes('memory') ? args : [...args, '--data-dir', dir]
  // BENCH_NODE_ARGS: node flags for the hub, e.g. `--cpu-prof --cpu-prof-dir=prof`.
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '')
  const child = spawn(
    process.execPath,
    [...nodeArgs, bin, 'serve', '--port', '0', '--heartbeat-ms', 'off', ...withDir],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  let out = ''
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk
      const match = /listening on http:\/\/[^:]+:(\d+)/.exec(out)
      if (match !== null) resolve(Number(match[1]))
    })
    child.on('exit', (code) => reject(new Error(`hub exited with ${code}`)))
  })
  return { port, child, dir }
}

const open = (port: number): Promise<Socket> =>
  new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket))
    socket.setNoDelay(true)
  })

function publishRequest(topic: string, data: string): string {
  const body = `{"topic":"${topic}","data":"${data}"}`
  return `POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`
}

/** Publishes as fast as `connections` x `depth` pipelined requests allow, for `ms`. */
async function publishLoad(port: number, ms: number, connections: number, depth: number) {
  const latencies: number[] = []
  const deadline = performance.now() + ms
  let answered = 0
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      const socket = await open(port)
      const sentAt: number[] = []
      let text = ''
      let sent = 0
      await new Promise<void>((resolve) => {
        const pump = (): void => {
          while (performance.now() < deadline && sentAt.length < depth) {
            sentAt.push(performance.now())
            socket.write(publishRequest(`p${c}`, `event ${sent++}`))
          }
          if (sentAt.length === 0) resolve()
        }
        socket.setEncoding('utf8').on('data', (chunk: string) => {
          text += chunk
          // Each answer is a small JSON body with Content-Length: count whole answers.
          for (;;) {
            const head = text.indexOf('\r\n\r\n')
            if (head === -1) break
            const length = Number(/content-length: (\d+)/i.exec(text.slice(0, head))?.[1] ?? 0)
            if (text.length < head + 4 + length) break
            if (!text.startsWith('HTTP/1.1 200')) throw new Error(text.slice(0, 200))
            text = text.slice(head + 4 + length)
            latencies.push(performance.now() - sentAt.shift()!)
            answered++
          }
          pump()
        })
        pump()
      })
      socket.destroy()
    }),
  )
  latencies.sort((a, b) => a - b)
  const at = (q: number): number => latencies[Math.floor(q * (latencies.length - 1))]!
  return { perSecond: (answered / ms) * 1000, p50: at(0.5), p99: at(0.99) }
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** `streams` subscribers on one topic, `rate` publishes/s to it for `ms`. */
async function fanOut(port: number, pid: number, ms: number, streams = 500, rate = 200) {
  const delays: number[] = []
  const sockets: Socket[] = []
  let ready = 0
  for (let i = 0; i < streams; i++) {
    const socket = await open(port)
    let buffer = ''
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      if (buffer === '' && chunk.startsWith('HTTP/1.1 200')) ready++
      buffer += chunk
      let at: number
      while ((at = buffer.indexOf('\ndata: t')) !== -1) {
        const end = buffer.indexOf('\n', at + 1)
        if (end === -1) break
        delays.push(performance.timeOrigin + performance.now() - Number(buffer.slice(at + 8, end)))
        buffer = buffer.slice(end)
      }
      if (buffer.length > 4096) buffer = buffer.slice(-512)
    })
    socket.write(`GET /events?topic=fan HTTP/1.1\r\nHost: x\r\n\r\n`)
    sockets.push(socket)
  }
  while (ready < streams) await new Promise((resolve) => setTimeout(resolve, 10))
  const publisher = await open(port)
  publisher.on('data', () => undefined)
  const cpuBefore = cpuSeconds(pid)
  const start = performance.now()
  let sent = 0
  while (performance.now() - start < ms) {
    const due = Math.floor(((performance.now() - start) * rate) / 1000)
    for (; sent < due; sent++)
      publisher.write(publishRequest('fan', `t${performance.timeOrigin + performance.now()}`))
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
  const expected = sent * streams
  const deadline = performance.now() + 10_000
  while (delays.length < expected && performance.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 10))
  const cpu = cpuSeconds(pid) - cpuBefore
  for (const socket of [...sockets, publisher]) socket.destroy()
  delays.sort((a, b) => a - b)
  const at = (q: number): number => delays[Math.floor(q * (delays.length - 1))]!
  return {
    delivered: delays.length / expected,
    p50: at(0.5),
    p99: at(0.99),
    cpuPerEventUs: (cpu / delays.length) * 1e6,
  }
}

const results: Record<string, string[][]> = {}
for (let round = 1; round <= rounds; round++) {
  for (const [name, args] of Object.entries(configs)) {
    if (only !== '' && !name.includes(only)) continue
    const hub = await startHub(args)
    const publish = await publishLoad(hub.port, seconds * 1000, publishers, 1)
    const single = await publishLoad(hub.port, (seconds * 1000) / 2, 1, 1)
    const fan = await fanOut(hub.port, hub.child.pid!, seconds * 1000)
    hub.child.kill('SIGTERM')
    await new Promise((resolve) => hub.child.once('exit', resolve))
    rmSync(hub.dir, { recursive: true, force: true })
    ;(results[name] ??= []).push([
      `${Math.round(publish.perSecond).toLocaleString('en')}/s`,
      `${publish.p50.toFixed(2)} / ${publish.p99.toFixed(2)} ms`,
      `${Math.round(single.perSecond).toLocaleString('en')}/s (p50 ${single.p50.toFixed(2)} ms)`,
      `${fan.p50.toFixed(2)} / ${fan.p99.toFixed(2)} ms`,
      `${fan.cpuPerEventUs.toFixed(2)} µs`,
      `${(fan.delivered * 100).toFixed(1)} %`,
    ])
    console.error(`round ${round}: ${name} done`)
  }
}
console.log(
  `| store | publishes/s (${publishers} publishers) | their latency p50 / p99 | one sequential publisher | fan-out delay p50 / p99 | server CPU per delivered event | delivered |`,
)
console.log('| --- | --- | --- | --- | --- | --- | --- |')
for (const [name, rows] of Object.entries(results))
  for (const [round, row] of rows.entries())
    console.log(`| ${name} (round ${round + 1}) | ${row.join(' | ')} |`)
