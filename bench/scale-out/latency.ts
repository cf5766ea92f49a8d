/**
 * Scale-out benchmark: publish-to-receive latency and delivered events/s for
 *   1 node in memory, 1 node on Redis, 3 nodes on Redis
 * with the same subscribers and publisher in one run. Nodes are real `ssehub serve` processes
 * (build first: `npm run build`); Redis is a private redis-server on a free port.
 *
 * Run: npx tsx bench/scale-out/latency.ts [--subscribers 300] [--rate 200] [--seconds 5]
 * Writes bench/results/scale-out.json and bench/results/scale-out.md.
 */
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { parseArgs } from 'node:util'
import { startCliHub, type CliProcess } from '../../test/helpers/cli.js'
import { openStream, type RawStream } from '../../test/helpers/raw-stream.js'
import { startRedis } from '../../test/helpers/redis-server.js'
import { waitFor } from '../../test/helpers/wait.js'

const { values } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '300' },
    rate: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '5' },
  },
})
const subscriberCount = Number(values.subscribers)
const rate = Number(values.rate)
const seconds = Number(values.seconds)

interface Row {
  setup: string
  subscribers: number
  offeredPerSecond: number
  published: number
  delivered: number
  missed: number
  deliveredPerSecond: number
  p50Ms: number
  p90Ms: number
  p99Ms: number
  maxMs: number
  burstPublishesPerSecond: number
  burstDeliveredPerSecond: number
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

async function run(setup: string, nodeArgs: string[][]): Promise<Row> {
  const nodes: { url: string; cli: CliProcess }[] = []
  for (const args of nodeArgs)
    nodes.push(
      await startCliHub([
        ...['--heartbeat-ms', 'off', '--max-connections', 'off'],
        // One load generator on one IP: the per-IP and per-publisher limits would measure themselves.
        ...['--max-connections-per-ip', 'off', '--publish-rate', 'off'],
        ...args,
      ]),
    )
  const streams: RawStream[] = []
  for (let i = 0; i < subscriberCount; i++)
    streams.push(await openStream(`${nodes[i % nodes.length]!.url}/events?topic=bench`))
  await Promise.all(streams.map((s) => s.waitForText('id: ')))
  const latencies: number[] = []
  const cursors = streams.map(() => 0)
  const collect = (): void => {
    const now = performance.timeOrigin + performance.now()
    streams.forEach((s, i) => {
      for (; cursors[i]! < s.events.length; cursors[i]!++) {
        const sent = Number(s.events[cursors[i]!]!.data.split(' ')[1])
        if (sent > 0) latencies.push(now - sent)
      }
    })
  }
  const collector = setInterval(collect, 1)
  // Phase 1: a fixed rate, publishes spread over the nodes.
  const total = rate * seconds
  const start = performance.now()
  for (let seq = 0; seq < total; seq++) {
    const url = nodes[seq % nodes.length]!.url
    const sent = performance.timeOrigin + performance.now()
    const response = await fetch(`${url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ topic: 'bench', data: `${seq} ${sent}` }),
    })
    await response.arrayBuffer()
    if (response.status !== 200) throw new Error(`publish answered ${response.status}`)
    const wait = start + ((seq + 1) * 1000) / rate - performance.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
  }
  const expected = total * subscriberCount
  await waitFor(() => latencies.length >= expected, 'deliveries', 30_000).catch(() => undefined)
  const elapsed = (performance.now() - start) / 1000
  collect()
  const sorted = [...latencies].sort((a, b) => a - b)
  // Phase 2: a burst, 16 publishes in flight, as fast as accepted (no timestamps needed).
  const burst = 2000
  const before = streams.reduce((n, s) => n + s.events.length, 0)
  const burstStart = performance.now()
  let next = 0
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < burst) {
        const seq = next++
        const response = await fetch(`${nodes[seq % nodes.length]!.url}/publish`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ topic: 'bench', data: `b 0` }),
        })
        await response.arrayBuffer()
        if (response.status !== 200) throw new Error(`publish answered ${response.status}`)
      }
    }),
  )
  const burstPublished = (performance.now() - burstStart) / 1000
  await waitFor(
    () => streams.reduce((n, s) => n + s.events.length, 0) - before >= burst * subscriberCount,
    'burst',
    60_000,
  ).catch(() => undefined)
  const burstElapsed = (performance.now() - burstStart) / 1000
  const burstDelivered = streams.reduce((n, s) => n + s.events.length, 0) - before
  clearInterval(collector)
  for (const s of streams) s.close()
  for (const node of nodes) {
    node.cli.child.kill('SIGTERM')
    await node.cli.exited
  }
  const round = (n: number): number => Math.round(n * 100) / 100
  return {
    setup,
    subscribers: subscriberCount,
    offeredPerSecond: rate,
    published: total,
    delivered: latencies.length,
    missed: expected - latencies.length,
    deliveredPerSecond: Math.round(latencies.length / elapsed),
    p50Ms: round(percentile(sorted, 50)),
    p90Ms: round(percentile(sorted, 90)),
    p99Ms: round(percentile(sorted, 99)),
    maxMs: round(sorted.at(-1) ?? NaN),
    burstPublishesPerSecond: Math.round(burst / burstPublished),
    burstDeliveredPerSecond: Math.round(burstDelivered / burstElapsed),
  }
}

const redis = await startRedis()
const rows: Row[] = []
rows.push(await run('1 node, memory', [[]]))
rows.push(await run('1 node, Redis', [['--redis', redis.url, '--redis-prefix', 'b1:{h}:']]))
rows.push(
  await run(
    '3 nodes, Redis',
    [0, 1, 2].map(() => ['--redis', redis.url, '--redis-prefix', 'b3:{h}:']),
  ),
)
await redis.stop()

const command = `npx tsx bench/scale-out/latency.ts --subscribers ${subscriberCount} --rate ${rate} --seconds ${seconds}`
const machine = `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, loopback; subscribers, publisher and hubs share the machine`
writeFileSync(
  'bench/results/scale-out.json',
  JSON.stringify({ command, machine, date: new Date().toISOString(), rows }, null, 2) + '\n',
)
const header =
  '| setup | subscribers | offered ev/s | delivered | missed | delivered/s | p50 ms | p90 ms | p99 ms | max ms | burst publishes/s | burst delivered/s |'
const lines = rows.map(
  (r) =>
    `| ${r.setup} | ${r.subscribers} | ${r.offeredPerSecond} | ${r.delivered} | ${r.missed} | ${r.deliveredPerSecond} | ${r.p50Ms} | ${r.p90Ms} | ${r.p99Ms} | ${r.maxMs} | ${r.burstPublishesPerSecond} | ${r.burstDeliveredPerSecond} |`,
)
const base = rows[0]!
const ratios = rows.map(
  (r) =>
    `| ${r.setup} | ${(r.p50Ms / base.p50Ms).toFixed(2)}x | ${(r.p99Ms / base.p99Ms).toFixed(2)}x | ${(r.burstDeliveredPerSecond / base.burstDeliveredPerSecond).toFixed(2)}x |`,
)
writeFileSync(
  'bench/results/scale-out.md',
  [
    '# Scale-out benchmark',
    '',
    `Command: \`${command}\` (after \`npm run build\`)`,
    '',
    `Machine: ${machine}. Date: ${new Date().toISOString()}.`,
    '',
    header,
    '|' + ' --- |'.repeat(12),
    ...lines,
    '',
    'Ratios to 1 node in memory (same run):',
    '',
    '| setup | p50 | p99 | burst delivered/s |',
    '| --- | --- | --- | --- |',
    ...ratios,
    '',
  ].join('\n'),
)
console.log([header, ...lines].join('\n'))
