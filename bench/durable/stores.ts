/**
 * Which storage for the durable broker (issue 15): an embedded store from npm (`lmdb`, whose
 * batched async writes are a group commit) against our append-only segment log (the
 * `DurableBroker` as shipped), on publish throughput and latency (durable acknowledgement, and
 * without sync), disk bytes per event, restart time with 1,000,000 retained events, and code size.
 *
 *   npm install --prefix bench/durable        # lmdb, for this comparison only
 *   npx tsx bench/durable/stores.ts [--events 1000000] [--seconds 3] [--dir /tmp/ssehub-stores]
 *
 * Each candidate stores the same record (the segment log's JSON payload) under the same seq.
 * lmdb acknowledges on `flushed` (its commit is synced to disk), as the durable broker does on
 * its `fdatasync`. The restart is timed in a fresh process: open, read every event back, and
 * build the in-memory history (the durable broker) or the list of events (lmdb).
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DurableBroker } from '../../src/broker/durable.js'
import { noopSink } from '../../test/broker/contract.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const repo = join(here, '../..')
const lmdbPath = join(here, 'node_modules/lmdb/dist/index.cjs')

function arg(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index === -1 ? fallback : process.argv[index + 1]!
}
const events = Number(arg('events', '1000000'))
const seconds = Number(arg('seconds', '3'))
const base = arg('dir', '/tmp/ssehub-stores')
const data = 'x'.repeat(100) // a 100-byte payload

/** The part of lmdb's API used here (imported at run time: it is no dependency of ssehub). */
interface LmdbDb {
  put(key: number, value: Buffer): Promise<boolean> & { flushed?: Promise<void> }
  getRange(options?: object): Iterable<{ key: number; value: Buffer }>
  readonly flushed: Promise<void>
  close(): Promise<void>
}
type LmdbOpen = (options: Record<string, unknown>) => LmdbDb

/** One candidate: publish one event (resolves when acknowledged), close. */
interface Candidate {
  publish(seq: number): Promise<unknown>
  close(): Promise<void>
}

function payload(seq: number): Buffer {
  return Buffer.from(JSON.stringify([seq, Date.now(), ['t'], null, data, null, 0]))
}

async function openCandidate(name: string, dir: string, sync: boolean): Promise<Candidate> {
  if (name === 'segment-log') {
    const broker = new DurableBroker({
      dataDir: dir,
      fsync: sync ? 'always' : 'never',
      historyMaxEvents: 10_000_000,
      historyMaxBytes: null,
      historyMaxAgeMs: null,
    })
    await broker.start(noopSink)
    return { publish: () => broker.publish({ keys: ['t'], data }), close: () => broker.close() }
  }
  const { open } = (await import(lmdbPath)) as { open: LmdbOpen }
  const db = open({
    path: dir,
    encoding: 'binary',
    keyEncoding: 'uint32',
    compression: false,
    noSync: !sync,
    separateFlushed: true,
  })
  return {
    publish: (seq) => {
      const written = db.put(seq, payload(seq))
      return sync ? written.then(() => written.flushed) : written
    },
    close: () => db.close(),
  }
}

/** `concurrency` publishers, each publishing its next event once the last one is acknowledged. */
async function load(candidate: Candidate, concurrency: number, ms: number) {
  const latencies: number[] = []
  let seq = 0
  const deadline = performance.now() + ms
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const start = performance.now()
      await candidate.publish(++seq)
      latencies.push(performance.now() - start)
    }
  }
  const start = performance.now()
  await Promise.all(Array.from({ length: concurrency }, worker))
  const elapsed = performance.now() - start
  latencies.sort((a, b) => a - b)
  const at = (q: number): number => latencies[Math.floor(q * (latencies.length - 1))]!
  return { perSecond: (latencies.length / elapsed) * 1000, p50: at(0.5), p99: at(0.99) }
}

function diskBytes(dir: string): number {
  // Allocated blocks (what the disk gives up), not the apparent size of a sparse map file.
  return Number(execFileSync('du', ['-s', '-B1', dir], { encoding: 'utf8' }).split('\t')[0])
}

/** Fills a fresh store with `count` events, as fast as batches allow. */
async function fill(name: string, dir: string, count: number): Promise<void> {
  const candidate = await openCandidate(name, dir, false)
  for (let seq = 1; seq <= count;) {
    const batch: Promise<unknown>[] = []
    for (let i = 0; i < 5000 && seq <= count; i++) batch.push(candidate.publish(seq++))
    await Promise.all(batch)
  }
  await candidate.close()
}

/** The restart, in this process (run as a child by the parent): prints JSON. */
async function restartChild(name: string, dir: string): Promise<void> {
  const start = performance.now()
  let count: number
  if (name === 'segment-log') {
    const broker = new DurableBroker({
      dataDir: dir,
      historyMaxEvents: 10_000_000,
      historyMaxBytes: null,
      historyMaxAgeMs: null,
    })
    await broker.start(noopSink)
    count = broker.health().details!.historyEvents as number
  } else {
    const { open } = (await import(lmdbPath)) as { open: LmdbOpen }
    const db = open({ path: dir, encoding: 'binary', keyEncoding: 'uint32', compression: false })
    const list: unknown[] = []
    for (const { key, value } of db.getRange()) {
      const [seq, time, keys, event, text, retry, close] = JSON.parse(value.toString()) as unknown[]
      list.push({ seq, id: `e-${key}`, time, keys, event, data: text, retry, close: close === 1 })
    }
    count = list.length
  }
  const ms = performance.now() - start
  process.stdout.write(JSON.stringify({ ms, count, rssMiB: process.memoryUsage().rss / 2 ** 20 }))
  process.exit(0)
}

function linesOf(files: string[]): number {
  return files.reduce(
    (sum, file) => sum + readFileSync(join(repo, file), 'utf8').split('\n').length,
    0,
  )
}

function folderBytes(dir: string): number {
  let total = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    total += entry.isDirectory() ? folderBytes(path) : statSync(path).size
  }
  return total
}

if (process.argv[2] === '--restart-child') {
  await restartChild(process.argv[3]!, process.argv[4]!)
}

const candidates = ['segment-log', 'lmdb']
const rows: Record<string, Record<string, string>> = {}
for (const name of candidates) rows[name] = {}
rmSync(base, { recursive: true, force: true })
mkdirSync(base, { recursive: true })

// Throughput and latency: interleaved, so that both see the same machine.
for (const [sync, label] of [
  [true, 'durable ack'],
  [false, 'no sync'],
] as const) {
  for (const concurrency of [1, 64]) {
    for (const name of candidates) {
      const dir = join(base, `${name}-${label.replace(' ', '-')}-${concurrency}`)
      const candidate = await openCandidate(name, dir, sync)
      const result = await load(candidate, concurrency, seconds * 1000)
      await candidate.close()
      rmSync(dir, { recursive: true, force: true })
      rows[name]![`${label}, ${concurrency} in flight`] =
        `${Math.round(result.perSecond).toLocaleString('en')}/s (p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms)`
    }
  }
}

// Disk bytes per event and restart time with `events` retained.
for (const name of candidates) {
  const dir = join(base, `${name}-fill`)
  await fill(name, dir, events)
  rows[name]!['disk bytes per event'] = (diskBytes(dir) / events).toFixed(1)
  const child = spawnSync(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--restart-child', name, dir],
    { encoding: 'utf8', maxBuffer: 1 << 20 },
  )
  const restart = JSON.parse(child.stdout) as { ms: number; count: number; rssMiB: number }
  if (restart.count !== events) throw new Error(`${name}: read back ${restart.count} events`)
  rows[name]![`restart with ${events.toLocaleString('en')} events`] =
    `${(restart.ms / 1000).toFixed(2)} s (RSS ${Math.round(restart.rssMiB)} MiB)`
  rmSync(dir, { recursive: true, force: true })
}

rows['segment-log']!['code'] =
  `${linesOf(['src/broker/segment-log.ts', 'src/broker/durable.ts'])} lines of TypeScript, no dependency`
rows.lmdb!['code'] =
  `${(folderBytes(join(here, 'node_modules')) / 2 ** 20).toFixed(1)} MiB installed (lmdb, its native build for this platform, msgpackr...) + an adapter`

const metrics = Object.keys(rows['segment-log']!)
console.log(`| | ${candidates.join(' | ')} |`)
console.log(`| --- | ${candidates.map(() => '---').join(' | ')} |`)
for (const metric of metrics)
  console.log(`| ${metric} | ${candidates.map((name) => rows[name]![metric]).join(' | ')} |`)
rmSync(base, { recursive: true, force: true })
