/**
 * `ssehub bench` / `npm run bench`: the capacity benchmark. Starts each server in turn (or uses
 * `--url`), drives it through the same load generator, and writes `<out>.json`, `<out>.md` and
 * `<out>-*.svg`. Servers run on core 0 and the generator on core 1 when `taskset` exists.
 *
 * npx tsx bench/capacity/run.ts [--servers ssehub,better-sse,naive-express,node-floor,nchan] [--url URL]
 *   [--connections 10000] [--held 19500] [--subscribers 1000,10000] [--rate 10] [--seconds 5]
 *   [--clients 1000] [--slow-subscribers 100] [--workers 2] [--max-publishes 100000] [--repeat 1]
 *   [--scenarios idle,broadcast,one-to-one,slow-consumer,features] [--out bench/results/capacity]
 *
 * Environment: BENCH_NODE_ARGS (extra node flags for the Node servers, e.g. `--cpu-prof
 * --cpu-prof-dir=prof`), BENCH_FAST_PATH=0 (ssehub without its socket-level fast path).
 */
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus, release, totalmem } from 'node:os'
import { parseArgs } from 'node:util'
import { LoadGenerator } from './generator.js'
import { renderReport } from './report.js'
import {
  broadcast,
  idle,
  oneToOne,
  slowConsumer,
  topicsPerPublish,
  type IdleResult,
  type PhaseResult,
  type SlowResult,
} from './scenarios.js'
import {
  absence,
  externalServer,
  hasTaskset,
  serverNames,
  ssehubVersion,
  startServer,
  type RunningServer,
  type ServerName,
} from './servers.js'

export const scenarioNames = [
  'idle',
  'broadcast',
  'one-to-one',
  'slow-consumer',
  'features',
] as const

/** Everything a run produced: the JSON file. */
export interface BenchResults {
  readonly command: string
  readonly startedAt: string
  readonly machine: Record<string, string | number>
  readonly versions: Record<string, string>
  readonly settings: Record<string, unknown>
  readonly absent: Record<string, string>
  readonly failures: Record<string, string>
  readonly idle: IdleResult[]
  readonly phases: PhaseResult[]
  readonly slow: SlowResult[]
  readonly features: PhaseResult[]
}

function positive(name: string, raw: string): number {
  const n = Number(raw)
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(`--${name} expects a positive integer, got ${JSON.stringify(raw)}`)
  return n
}

const { values } = parseArgs({
  options: {
    servers: { type: 'string', default: serverNames.join(',') },
    url: { type: 'string' },
    connections: { type: 'string', default: '10000' },
    held: { type: 'string', default: '19500' },
    subscribers: { type: 'string', default: '1000,10000' },
    rate: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '5' },
    clients: { type: 'string', default: '1000' },
    'slow-subscribers': { type: 'string', default: '100' },
    'slow-rate': { type: 'string', default: '400' },
    workers: { type: 'string', default: '2' },
    'max-publishes': { type: 'string', default: '100000' },
    repeat: { type: 'string', default: '1' },
    scenarios: { type: 'string', default: scenarioNames.join(',') },
    out: { type: 'string', default: 'bench/results/capacity' },
  },
})

const servers = values.url !== undefined ? ['external'] : values.servers.split(',').filter(Boolean)
for (const name of servers) {
  if (name !== 'external' && !(serverNames as readonly string[]).includes(name))
    throw new Error(`unknown server ${JSON.stringify(name)}; known: ${serverNames.join(', ')}`)
}
const scenarios = values.scenarios.split(',').filter(Boolean)
for (const name of scenarios) {
  if (!(scenarioNames as readonly string[]).includes(name))
    throw new Error(`unknown scenario ${JSON.stringify(name)}; known: ${scenarioNames.join(', ')}`)
}
const connections = positive('connections', values.connections)
const held = positive('held', values.held)
const subscriberCounts = values.subscribers.split(',').map((s) => positive('subscribers', s))
const rate = positive('rate', values.rate)
const seconds = positive('seconds', values.seconds)
const clients = positive('clients', values.clients)
const slowSubscribers = positive('slow-subscribers', values['slow-subscribers'])
const slowRate = positive('slow-rate', values['slow-rate'])
const workers = positive('workers', values.workers)
const maxPublishes = positive('max-publishes', values['max-publishes'])
const repeat = positive('repeat', values.repeat)
const phase = { seconds, maxPublishes }
const log = (line: string): void => void process.stdout.write(`${line}\n`)

// The generator on core 1, every thread of it (workers inherit the mask of their creator).
if (hasTaskset)
  spawnSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' })

const results: BenchResults = {
  command:
    process.env.SSEHUB_BENCH_COMMAND ??
    `npx tsx bench/capacity/run.ts ${process.argv.slice(2).join(' ')}`.trim(),
  startedAt: new Date().toISOString(),
  machine: {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    pinning: hasTaskset ? 'servers taskset -c 0, load generator taskset -c 1' : 'none (no taskset)',
  },
  versions: { node: process.version, ssehub: ssehubVersion() },
  settings: {
    connections,
    held,
    subscriberCounts,
    rate,
    seconds,
    clients,
    slowSubscribers,
    slowRate,
    workers,
    maxPublishes,
    repeat,
    scenarios,
  },
  absent: {},
  failures: {},
  idle: [],
  phases: [],
  slow: [],
  features: [],
}

async function withServer(
  name: ServerName | 'external',
  historyMaxEvents: number | undefined,
  body: (server: RunningServer, gen: LoadGenerator) => Promise<void>,
): Promise<void> {
  const server =
    name === 'external'
      ? externalServer(values.url!)
      : await startServer(name, {
          maxConnections: 20_000,
          ...(historyMaxEvents === undefined ? {} : { historyMaxEvents }),
        })
  results.versions[server.name] = server.version
  const gen = LoadGenerator.start(server.host, server.port, workers, 16)
  try {
    await body(server, gen)
  } finally {
    await gen.stop()
    await server.stop()
  }
}

// Scenario by scenario, every server in turn (a fresh server and generator for each): the figures
// a ratio compares are measured minutes apart, not a whole run apart, so drift of this shared
// machine skews them least, and no scenario inherits the state another one left behind.
const available: (ServerName | 'external')[] = []
for (const name of servers) {
  const missing = name === 'external' ? null : absence(name as ServerName)
  if (missing === null) available.push(name as ServerName | 'external')
  else {
    results.absent[name] = missing
    log(`${name}: absent (${missing}), skipped`)
  }
}

interface Step {
  readonly label: string
  /** Publishing phases run `--repeat` rounds (each round: every server in turn). */
  readonly repeated: boolean
  readonly run: (server: RunningServer, gen: LoadGenerator, round: number) => Promise<void>
}
// The round of a row, when there are several (the report takes the median of each figure).
const tagged = (row: PhaseResult, round: number): PhaseResult =>
  repeat > 1 ? { ...row, run: round } : row
const steps: Step[] = []
if (scenarios.includes('idle'))
  steps.push({
    label: 'idle',
    repeated: false,
    run: async (server, gen) => {
      const row = await idle(server, gen, connections, held, (line) =>
        log(`  ${server.name} ${line.trim()}`),
      )
      results.idle.push(row)
    },
  })
if (scenarios.includes('broadcast')) {
  for (const subscribers of subscriberCounts) {
    steps.push({
      label: `broadcast ${subscribers}`,
      repeated: true,
      run: async (server, gen, round) => {
        for (const row of await broadcast(server, gen, subscribers, rate, phase)) {
          results.phases.push(tagged(row, round))
          log(
            `  ${server.name} broadcast ${subscribers} ${row.mode}: ${row.deliveredPerSecond} events/s, p99 ${row.latency.p99Ms} ms, missed ${row.missed}, ${row.serverCpuUsPerEvent ?? '?'} us CPU/event, generator ${row.generatorCpuPercent}%`,
          )
        }
      },
    })
  }
}
if (scenarios.includes('one-to-one'))
  steps.push({
    label: 'one-to-one',
    repeated: true,
    run: async (server, gen, round) => {
      for (const row of await oneToOne(server, gen, clients, phase)) {
        results.phases.push(tagged(row, round))
        log(
          `  ${server.name} ${row.scenario}: ${row.publishesPerSecond} publishes/s, missed ${row.missed}, ${row.serverCpuUsPerEvent ?? '?'} us CPU/event, generator ${row.generatorCpuPercent}%`,
        )
      }
    },
  })
if (scenarios.includes('slow-consumer'))
  steps.push({
    label: 'slow-consumer',
    repeated: false,
    run: async (server, gen) => {
      const row = await slowConsumer(server, gen, slowSubscribers, slowRate, phase)
      results.slow.push(row)
      log(
        `  ${server.name} slow consumer: others p99 ${row.latency.p99Ms} ms, missed ${row.missed}, stalled one dropped: ${row.slowClosedByServer}, RSS +${((row.serverRssGrowthBytes ?? 0) / 2 ** 20).toFixed(1)} MiB`,
      )
    },
  })

for (const step of steps) {
  const rounds = step.repeated ? repeat : 1
  for (let round = 1; round <= rounds; round++) {
    log(rounds > 1 ? `${step.label} (round ${round} of ${rounds}):` : `${step.label}:`)
    for (const name of available) {
      try {
        await withServer(name, undefined, (server, gen) => step.run(server, gen, round))
      } catch (error) {
        results.failures[`${name} ${step.label}${rounds > 1 ? ` round ${round}` : ''}`] =
          String(error)
        log(`  ${name} ${step.label} FAILED: ${String(error)}`)
      }
    }
  }
}

// Feature costs, ssehub alone: history at its default and at its minimum (1 event).
if (
  scenarios.includes('features') &&
  (servers.includes('ssehub') || servers.includes('external'))
) {
  const name = servers.includes('ssehub') ? 'ssehub' : 'external'
  const sizes = name === 'external' ? [undefined] : [10_000, 1]
  log(`${name} features:`)
  for (const historyMaxEvents of sizes) {
    const label =
      historyMaxEvents === undefined
        ? 'as configured'
        : historyMaxEvents === 1
          ? 'history off (1 event)'
          : `history ${historyMaxEvents}`
    try {
      await withServer(name, historyMaxEvents, async (server, gen) => {
        const rows = await topicsPerPublish(
          server,
          gen,
          Math.min(1000, subscriberCounts[0]!),
          label,
          phase,
        )
        for (const row of rows)
          log(
            `  ${row.scenario}: ${row.publishesPerSecond} publishes/s, ${row.deliveredPerSecond} events/s, p99 ${row.latency.p99Ms} ms`,
          )
        results.features.push(...rows)
      })
    } catch (error) {
      results.failures[`features ${label}`] = String(error)
      log(`  features ${label} FAILED: ${String(error)}`)
    }
  }
}

const report = renderReport(results)
writeFileSync(`${values.out}.json`, JSON.stringify(results, null, 2) + '\n')
writeFileSync(`${values.out}.md`, report.markdown)
for (const [suffix, svg] of Object.entries(report.charts))
  writeFileSync(`${values.out}-${suffix}.svg`, svg)
log(`wrote ${values.out}.json, ${values.out}.md and ${Object.keys(report.charts).length} charts`)
process.exit(Object.keys(results.failures).length === 0 ? 0 : 1)
