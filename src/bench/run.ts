/**
 * The capacity benchmark: each scenario runs for every server in turn (or the hub at `--url`),
 * through the same load generator; the results feed the report (report.ts). The bench process is
 * `main.ts`; `ssehub bench` (src/cli/bench.ts) parses the flags and starts it.
 *
 * Environment: BENCH_NODE_ARGS (extra node flags for the Node servers, e.g. `--cpu-prof
 * --cpu-prof-dir=prof`), BENCH_FAST_PATH=0 (ssehub without its socket-level fast path).
 */
import { cpus, release, totalmem } from 'node:os'
import { LoadGenerator } from './generator.js'
import type { BenchOptions, ServerName } from './options.js'
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
  placement,
  ssehubVersion,
  startServer,
  type RunningServer,
} from './servers.js'

/** `, Redis 12 ms CPU/1000 events` for a phase of ssehub-redis, else nothing. */
function redisCpu(row: PhaseResult): string {
  return row.redisCpuMsPer1000Events === undefined
    ? ''
    : `, Redis ${row.redisCpuMsPer1000Events ?? '?'} ms CPU/1000 events`
}

/** The placement of the processes of a run (`ssehub-workers` spreads over cores). */
export function runPlacement(options: BenchOptions): ReturnType<typeof placement> {
  return placement(options.servers.includes('ssehub-workers') ? options.hubWorkers : null)
}

/** `; primary 0.1 s CPU 2 %, w1 2500 conns 1.2 s CPU 40 %, ...` for ssehub-workers, else nothing. */
function perProcess(row: { processes?: PhaseResult['processes'] }): string {
  if (row.processes === undefined) return ''
  return `; ${row.processes
    .map(
      (p) =>
        `${p.role === 'primary' ? 'primary' : `${p.node?.replace(/^.*\//, '') ?? 'worker'} ${p.connections ?? '?'} conns`} ${p.cpuSeconds} s CPU${p.cpuPercent === null ? '' : ` ${p.cpuPercent} %`}`,
    )
    .join(', ')}`
}

/** Everything a run produced: the JSON file. */
export interface BenchResults {
  readonly command: string
  readonly startedAt: string
  readonly machine: Record<string, string | number>
  readonly versions: Record<string, string>
  readonly settings: Record<string, unknown>
  /** Servers skipped, each with what it needs. */
  readonly absent: Record<string, string>
  readonly failures: Record<string, string>
  readonly idle: IdleResult[]
  readonly phases: PhaseResult[]
  readonly slow: SlowResult[]
  readonly features: PhaseResult[]
}

/**
 * Runs the scenarios of `options`, logging a line per figure, and resolves with the results
 * (a scenario that failed is in `failures`; the run goes on with the next one).
 */
export async function runCapacityBench(
  options: BenchOptions,
  log: (line: string) => void,
): Promise<BenchResults> {
  const { connections, held, subscriberCounts, rate, seconds, clients } = options
  const { slowSubscribers, slowRate, workers, maxPublishes, repeat, scenarios } = options
  const servers: (ServerName | 'external')[] =
    options.url !== undefined ? ['external'] : [...options.servers]
  const phase = { seconds, maxPublishes }
  const where = runPlacement(options)
  const withWorkers = options.servers.includes('ssehub-workers')
  const results: BenchResults = {
    command: options.command,
    startedAt: new Date().toISOString(),
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
      pinning: !hasTaskset
        ? 'none (no taskset)'
        : withWorkers
          ? `servers taskset -c 0, ssehub-workers taskset -c ${where.hubCores}, load generator taskset -c ${where.generatorCore}${where.shared ? ' (shared with a hub worker: this machine has no core past the hub)' : ''}`
          : 'servers taskset -c 0, load generator taskset -c 1',
    },
    versions: { node: process.version, ssehub: ssehubVersion() },
    settings: {
      ...(options.url === undefined ? {} : { url: options.url }),
      connections,
      held,
      subscriberCounts,
      rate,
      seconds,
      clients,
      slowSubscribers,
      slowRate,
      workers,
      ...(withWorkers ? { hubWorkers: options.hubWorkers } : {}),
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

  // A running hub: checked once, before any scenario (a wrong URL fails here, in one line).
  const external = options.url === undefined ? null : await externalServer(options.url)

  async function withServer(
    name: ServerName | 'external',
    historyMaxEvents: number | undefined,
    body: (server: RunningServer, gen: LoadGenerator) => Promise<void>,
  ): Promise<void> {
    const server =
      name === 'external'
        ? external!
        : await startServer(name, {
            maxConnections: 20_000,
            hubWorkers: options.hubWorkers,
            placement: where,
            ...(historyMaxEvents === undefined ? {} : { historyMaxEvents }),
          })
    results.versions[server.name] = server.version
    const key = name === 'external' ? (options.key ?? null) : null
    const gen = LoadGenerator.start(server.host, server.port, workers, 16, key)
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
    const missing = name === 'external' ? null : absence(name)
    if (missing === null) available.push(name)
    else {
      results.absent[name] = missing
      log(`${name}: skipped, ${missing}`)
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
        if (row.processes !== undefined) log(`  ${server.name} idle${perProcess(row)}`)
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
              `  ${server.name} broadcast ${subscribers} ${row.mode}: ${row.deliveredPerSecond} events/s, p99 ${row.latency.p99Ms} ms, missed ${row.missed}, ${row.serverCpuUsPerEvent ?? '?'} us CPU/event, generator ${row.generatorCpuPercent}%${redisCpu(row)}${perProcess(row)}`,
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
            `  ${server.name} ${row.scenario}: ${row.publishesPerSecond} publishes/s, missed ${row.missed}, ${row.serverCpuUsPerEvent ?? '?'} us CPU/event, generator ${row.generatorCpuPercent}%${redisCpu(row)}${perProcess(row)}`,
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
    (available.includes('ssehub') || available.includes('external'))
  ) {
    const name = available.includes('ssehub') ? 'ssehub' : 'external'
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

  return results
}
