/** The Markdown report and its SVG charts, from the JSON results of a run, and the files. */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { BUCKETS, bucketUpperUs } from './histogram.js'
import type { BenchResults } from './run.js'
import type { IdleResult, PhaseResult, ProcessFigure } from './scenarios.js'
import { barChart, lineChart, type Series } from './svg.js'

const KiB = 1024
/** Generator CPU % from which a phase's throughput is the generator's limit, not the server's. */
const GENERATOR_BOUND = 90
const n = (v: number | null | undefined, digits = 1): string =>
  v === null || v === undefined || Number.isNaN(v)
    ? '–'
    : v >= 1000
      ? Math.round(v).toLocaleString('en-US')
      : String(+v.toFixed(digits))
/** ssehub's figure over the peer's, e.g. `0.42x`. */
const ratio = (ours: number | null | undefined, theirs: number | null | undefined): string =>
  ours == null || theirs == null || !(theirs > 0) || Number.isNaN(ours)
    ? '–'
    : `${(ours / theirs).toFixed(2)}x`

function cdf(histogram: readonly number[]): [number, number][] {
  const total = histogram.reduce((a, b) => a + b, 0)
  if (total === 0) return []
  const points: [number, number][] = []
  let seen = 0
  for (let i = 0; i < BUCKETS; i++) {
    if (histogram[i] === 0) continue
    seen += histogram[i]!
    points.push([bucketUpperUs(i) / 1000, (100 * seen) / total])
  }
  return points
}

const phaseRow = (p: PhaseResult): string =>
  `| ${p.server}${p.run === undefined ? '' : ` #${p.run}`} | ${n(p.publishesPerSecond)} | ${n(p.deliveredPerSecond)} | ${n(p.missed)} | ${n(p.latency.p50Ms, 2)} | ${n(p.latency.p90Ms, 2)} | ${n(p.latency.p99Ms, 2)} | ${n(p.latency.maxMs, 2)} | ${n(p.serverCpuUsPerEvent, 2)} | ${n(p.serverCpuPercent)} | ${n(p.generatorCpuPercent)} |`
const phaseHead =
  '| server | publishes/s | delivered events/s | missed | p50 ms | p90 ms | p99 ms | max ms | server CPU µs/event | server CPU % | generator CPU % |\n| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |'

function median(values: readonly (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null).sort((a, b) => a - b)
  if (known.length === 0) return null
  const mid = known.length >> 1
  return known.length % 2 === 1 ? known[mid]! : (known[mid - 1]! + known[mid]!) / 2
}

/** A server's phase of a scenario (subscribers, mode), the median of its rounds. */
type FindPhase = (
  server: string,
  scenario: string,
  subscribers: number,
  mode: 'max' | 'rate',
) => PhaseResult | undefined

/**
 * Several rounds of one phase as one row: the median of each figure (events missed: the most in
 * any round); histograms are the median-throughput round's. `undefined` for no rows.
 */
export function medianOf(rows: readonly PhaseResult[]): PhaseResult | undefined {
  if (rows.length <= 1) return rows[0]
  const byThroughput = [...rows].sort((a, b) => a.deliveredPerSecond - b.deliveredPerSecond)
  const base = byThroughput[(rows.length - 1) >> 1]!
  const m = (get: (p: PhaseResult) => number | null): number | null => median(rows.map(get))
  const { run: _run, ...rest } = base
  return {
    ...rest,
    publishesPerSecond: m((p) => p.publishesPerSecond) ?? 0,
    deliveredPerSecond: m((p) => p.deliveredPerSecond) ?? 0,
    missed: Math.max(...rows.map((p) => p.missed)),
    latency: {
      ...base.latency,
      p50Ms: m((p) => p.latency.p50Ms) ?? base.latency.p50Ms,
      p90Ms: m((p) => p.latency.p90Ms) ?? base.latency.p90Ms,
      p99Ms: m((p) => p.latency.p99Ms) ?? base.latency.p99Ms,
      maxMs: m((p) => p.latency.maxMs) ?? base.latency.maxMs,
    },
    serverCpuPercent: m((p) => p.serverCpuPercent),
    serverCpuUsPerEvent: m((p) => p.serverCpuUsPerEvent),
    ...(base.redisCpuMsPer1000Events === undefined
      ? {}
      : { redisCpuMsPer1000Events: m((p) => p.redisCpuMsPer1000Events ?? null) }),
    generatorCpuPercent: m((p) => p.generatorCpuPercent) ?? 0,
  }
}

/** The Markdown report and the SVG charts (by file suffix) of a run's results. */
export function renderReport(r: BenchResults): {
  markdown: string
  charts: Record<string, string>
} {
  const servers = [...new Set([...r.idle.map((i) => i.server), ...r.phases.map((p) => p.server)])]
  // ssehub-redis and ssehub-workers are ssehub itself on another setting: their own sections,
  // not peers.
  const peers = servers.filter(
    (s) => s !== 'ssehub' && s !== 'ssehub-redis' && s !== 'ssehub-workers',
  )
  // With `--repeat`, a phase has one row per round: the summary takes the median of each figure.
  const find: FindPhase = (
    server: string,
    scenario: string,
    subscribers: number,
    mode: 'max' | 'rate',
  ): PhaseResult | undefined =>
    medianOf(
      r.phases.filter(
        (p) =>
          p.server === server &&
          p.scenario === scenario &&
          p.subscribers === subscribers &&
          p.mode === mode,
      ),
    )
  const idleOf = (server: string) => r.idle.find((i) => i.server === server)
  const [small, large] = [
    Math.min(...(r.settings.subscriberCounts as number[])),
    Math.max(...(r.settings.subscriberCounts as number[])),
  ]
  const out: string[] = []
  out.push('# ssehub capacity benchmark', '')
  out.push(`Command: \`${r.command}\`  `, `Started: ${r.startedAt}  `)
  out.push(
    `Machine: ${Object.entries(r.machine)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}  `,
  )
  out.push(
    `Versions: ${Object.entries(r.versions)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    '',
  )
  for (const [name, why] of Object.entries(r.absent))
    out.push(`**${name}: absent** (${why}); its columns are empty.`, '')
  for (const [name, why] of Object.entries(r.failures)) out.push(`**Failure** ${name}: ${why}`, '')
  out.push(
    'All servers run in one process pinned to one core; the load generator (raw sockets on worker threads, source addresses 127.0.0.2–17) runs on the other core and reports its own CPU, so a generator near 100 % means the generator, not the server, was the limit. Each scenario runs for every server in turn, with a fresh server and generator, so that the figures a ratio compares are measured minutes apart.' +
      // ssehub-workers is the exception: said here, not only in its own section further down.
      (servers.includes('ssehub-workers')
        ? ` Except ssehub-workers: a primary and ${String(r.settings.hubWorkers)} worker processes, pinned as the machine line says (its section below).`
        : ''),
    '',
  )

  // Headline: the targets of issue 5, as ratios ssehub / peer in this run.
  out.push('## ssehub against each peer (ratio = ssehub / peer)', '')
  const rounds = (r.settings.repeat as number | undefined) ?? 1
  if (rounds > 1)
    out.push(
      `Each publishing phase ran ${rounds} rounds (every server in turn in each round); the figures here are the medians of the rounds (events missed: the most in any round), the scenario tables below list every round.`,
      '',
    )
  out.push(`| target | ssehub | ${peers.map((p) => `${p} | ratio`).join(' | ')} |`)
  out.push(`| --- | --: | ${peers.map(() => '--: | --:').join(' | ')} |`)
  // A throughput figure measured while the generator was near its core's limit is a lower bound
  // for that server: it is marked, and the note under the table says so.
  let marked = false
  const line = (
    label: string,
    get: (server: string) => number | null | undefined,
    digits = 1,
    phaseOf?: (server: string) => PhaseResult | undefined,
  ): void => {
    const cell = (server: string): string => {
      const phase = phaseOf?.(server)
      if (phase === undefined || phase.generatorCpuPercent < GENERATOR_BOUND)
        return n(get(server), digits)
      marked = true
      return `${n(get(server), digits)} †`
    }
    const ours = get('ssehub')
    out.push(
      `| ${label} | ${cell('ssehub')} | ${peers.map((p) => `${cell(p)} | ${ratio(ours, get(p))}`).join(' | ')} |`,
    )
  }
  line(
    `RSS per idle connection at ${n(r.settings.connections as number)} (KiB, lower is better)`,
    (s) => {
      const v = idleOf(s)?.rssPerConnectionBytes
      return v == null ? null : v / KiB
    },
  )
  line(
    `broadcast ${n(large)}, max: server CPU µs per delivered event (lower is better)`,
    (s) => find(s, 'broadcast', large, 'max')?.serverCpuUsPerEvent,
    2,
  )
  line(
    `broadcast ${n(large)}, max: delivered events/s (higher is better)`,
    (s) => find(s, 'broadcast', large, 'max')?.deliveredPerSecond,
    1,
    (s) => find(s, 'broadcast', large, 'max'),
  )
  line(
    `broadcast ${n(large)}, max: events missed`,
    (s) => find(s, 'broadcast', large, 'max')?.missed,
  )
  line(
    `broadcast ${n(small)}, ${n(r.settings.rate as number)} publishes/s: p99 ms (lower is better)`,
    (s) => find(s, 'broadcast', small, 'rate')?.latency.p99Ms,
    2,
  )
  const oneToOne = (s: string): PhaseResult | undefined =>
    find(s, 'one-to-one', r.settings.clients as number, 'max')
  line(
    `one-to-one ${n(r.settings.clients as number)} client ids: publishes/s (higher is better)`,
    (s) => oneToOne(s)?.publishesPerSecond,
    1,
    oneToOne,
  )
  line(
    `one-to-one ${n(r.settings.clients as number)} client ids: server CPU µs per event (lower is better)`,
    (s) => oneToOne(s)?.serverCpuUsPerEvent,
    2,
  )
  const batchRow = r.phases.find((p) => p.server === 'ssehub' && p.scenario.includes('(batch)'))
  if (batchRow !== undefined)
    line(
      `${batchRow.scenario}: events/s (its own row: the peers' column is their one-per-POST figure)`,
      (s) =>
        s === 'ssehub'
          ? batchRow.publishesPerSecond
          : find(s, 'one-to-one', r.settings.clients as number, 'max')?.publishesPerSecond,
    )
  line(
    `held: subscriptions opened of ${n(r.settings.held as number)}`,
    (s) => idleOf(s)?.held.opened,
    0,
  )
  line('held: failures', (s) => idleOf(s)?.held.failed, 0)
  out.push('')
  if (marked)
    out.push(
      `† The load generator was at ${GENERATOR_BOUND} % CPU or more of its core in this phase: the generator, not this server, was the limit, and the server may do more (its CPU % is in the scenario's table). Its ratio is a bound, not a measure: compare the servers' CPU per event instead.`,
      '',
    )

  if (servers.includes('ssehub-redis')) redisSection(out, find, large, r)
  if (servers.includes('ssehub-workers')) workersSection(out, find, idleOf, small, large, r)

  out.push('## Idle connections', '', '![RSS against connections](' + 'capacity-rss.svg)', '')
  out.push(
    '| server | connections | failed | RSS MiB | open files | event-loop lag p99 ms |',
    '| --- | --: | --: | --: | --: | --: |',
  )
  for (const i of r.idle)
    for (const s of i.steps)
      out.push(
        `| ${i.server} | ${n(s.connections)} | ${s.failed} | ${n(s.rssBytes === null ? null : s.rssBytes / 2 ** 20)} | ${n(s.fds)} | ${n(s.lagP99Ms, 2)} |`,
      )
  out.push('')

  const detailed = [...new Set(r.phases.map((p) => p.scenario))].filter(
    (name) => name.startsWith('broadcast') || name.startsWith('one-to-one'),
  )
  for (const scenario of detailed) {
    const subs = [
      ...new Set(r.phases.filter((p) => p.scenario === scenario).map((p) => p.subscribers)),
    ]
    for (const s of subs)
      for (const mode of ['max', 'rate'] as const) {
        const rows = r.phases.filter(
          (p) => p.scenario === scenario && p.subscribers === s && p.mode === mode,
        )
        if (rows.length === 0) continue
        const how =
          mode === 'max'
            ? 'publisher as fast as accepted'
            : `${n(rows[0]!.offeredEventsPerSecond)} events/s offered`
        out.push(
          `## ${scenario}: ${n(s)} ${scenario.startsWith('one-to-one') ? 'client ids' : 'subscribers'}, ${how}`,
          '',
          phaseHead,
          ...rows.map(phaseRow),
          '',
        )
      }
  }
  out.push(
    '![latency distribution](capacity-latency.svg) ![events/s against subscribers](capacity-throughput.svg)',
    '',
  )

  if (r.slow.length > 0) {
    out.push(
      `## Slow consumer: one stream stops reading, ${n(r.slow[0]!.subscribers)} others get 8 KiB events at ${n(r.settings.slowRate as number)}/s`,
      '',
    )
    out.push(
      '| server | others p50 ms | others p99 ms | others missed | stalled stream dropped by server | server RSS growth MiB |',
      '| --- | --: | --: | --: | --- | --: |',
    )
    for (const s of r.slow)
      out.push(
        `| ${s.server} | ${n(s.latency.p50Ms, 2)} | ${n(s.latency.p99Ms, 2)} | ${n(s.missed)} | ${s.slowClosedByServer ? 'yes' : 'no'} | ${n(s.serverRssGrowthBytes === null ? null : s.serverRssGrowthBytes / 2 ** 20)} |`,
      )
    out.push('')
  }
  if (r.features.length > 0) {
    out.push(
      '## What features cost (ssehub alone; streams over 100 topics, publisher as fast as accepted)',
      '',
    )
    out.push(
      '| setting | publishes/s | delivered events/s | missed | p50 ms | p99 ms | server CPU µs/event |',
      '| --- | --: | --: | --: | --: | --: | --: |',
    )
    for (const f of r.features)
      out.push(
        `| ${f.scenario} | ${n(f.publishesPerSecond)} | ${n(f.deliveredPerSecond)} | ${n(f.missed)} | ${n(f.latency.p50Ms, 2)} | ${n(f.latency.p99Ms, 2)} | ${n(f.serverCpuUsPerEvent, 2)} |`,
      )
    out.push('')
  }

  // Projection from ssehub's measured per-connection memory and per-event CPU.
  const perConn = idleOf('ssehub')?.rssPerConnectionBytes
  const cpuPerEvent = find('ssehub', 'broadcast', large, 'max')?.serverCpuUsPerEvent
  if (perConn != null && perConn > 0) {
    out.push('## What a machine holds (projection from the measured ssehub figures)', '')
    out.push(
      `From ${n(perConn / KiB)} KiB per idle connection and ${n(cpuPerEvent, 2)} µs of CPU per delivered event, one process per core, 70 % of memory for connections, and the open-file limit per process:`,
      '',
    )
    out.push(
      '| machine | connections by memory | connections by a 20,000-file limit per process | broadcast events/s by CPU |',
      '| --- | --: | --: | --: |',
    )
    for (const [cores, gib] of [
      [2, 4],
      [4, 16],
      [8, 32],
      [16, 64],
    ] as const) {
      const byMemory = Math.floor((0.7 * gib * 2 ** 30) / perConn)
      out.push(
        `| ${cores} cores, ${gib} GiB | ${n(byMemory)} | ${n(cores * 19_500)} | ${cpuPerEvent == null ? '–' : n((cores * 1e6) / cpuPerEvent)} |`,
      )
    }
    out.push('')
  }

  const rateRows = r.phases.filter(
    (p) => p.scenario === 'broadcast' && p.subscribers === small && p.mode === 'rate',
  )
  const latency: Series[] = rateRows.map((p) => ({ name: p.server, points: cdf(p.histogram) }))
  const charts: Record<string, string> = {
    latency: lineChart({
      title: `Latency distribution, ${n(small)} subscribers, ${n(r.settings.rate as number)} publishes/s`,
      xLabel: 'publish-to-receive latency, ms (log)',
      yLabel: '% of events at or below',
      series: latency,
      logX: true,
    }),
    throughput: barChart({
      title: 'Delivered events/s, publisher as fast as accepted',
      xLabel: 'subscribers on one topic',
      yLabel: 'events/s',
      groups: (r.settings.subscriberCounts as number[]).map((s) => n(s)),
      series: servers.map((server) => ({
        name: server,
        values: (r.settings.subscriberCounts as number[]).map(
          (s) => find(server, 'broadcast', s, 'max')?.deliveredPerSecond ?? null,
        ),
      })),
    }),
    rss: lineChart({
      title: 'Server RSS against idle connections',
      xLabel: 'connections',
      yLabel: 'RSS, MiB',
      series: r.idle.map((i) => ({
        name: i.server,
        points: i.steps
          .filter((s) => s.rssBytes !== null)
          .map((s) => [s.connections, s.rssBytes! / 2 ** 20] as [number, number]),
      })),
    }),
  }
  return { markdown: out.join('\n') + '\n', charts }
}

/** A figure of a comparison row: its name, how to read it from a phase, its decimals (1). */
type Figure = readonly [
  name: string,
  get: (p: PhaseResult) => number | null | undefined,
  digits?: number,
]

/** One row per figure: `| label | figure | base | other | other / base |`. */
function comparisonRows(
  out: string[],
  label: string,
  base: PhaseResult | undefined,
  other: PhaseResult | undefined,
  figures: readonly Figure[],
): void {
  for (const [figure, get, digits = 1] of figures) {
    const a = base && get(base)
    const b = other && get(other)
    out.push(`| ${label} | ${figure} | ${n(a, digits)} | ${n(b, digits)} | ${ratio(b, a)} |`)
  }
}

/**
 * ssehub with the Redis broker against ssehub with the memory broker, the same build in the same
 * run (ratio = Redis / memory), with Redis's own CPU apart.
 */
function redisSection(out: string[], find: FindPhase, large: number, r: BenchResults): void {
  const clients = r.settings.clients as number
  const phases: [string, PhaseResult | undefined, PhaseResult | undefined][] = [
    [
      `broadcast ${n(large)}, max`,
      find('ssehub', 'broadcast', large, 'max'),
      find('ssehub-redis', 'broadcast', large, 'max'),
    ],
    [
      `one-to-one ${n(clients)} client ids`,
      find('ssehub', 'one-to-one', clients, 'max'),
      find('ssehub-redis', 'one-to-one', clients, 'max'),
    ],
  ]
  out.push(
    '## The Redis broker against the memory broker (ssehub-redis / ssehub, same build, same run)',
    '',
    "ssehub-redis is the same hub with the Redis broker on a redis-server the bench started on a free port, pinned to the generator's core (the hub has core 0 to itself either way); Redis's CPU is read from its /proc apart from the hub's.",
    '',
    '| phase | figure | memory | redis | ratio |',
    '| --- | --- | --: | --: | --: |',
  )
  for (const [label, memory, redis] of phases) {
    if (memory === undefined && redis === undefined) continue
    comparisonRows(out, label, memory, redis, [
      ['publishes/s', (p) => p.publishesPerSecond],
      ['delivered events/s', (p) => p.deliveredPerSecond],
      ['missed', (p) => p.missed, 0],
      ['hub CPU µs per delivered event', (p) => p.serverCpuUsPerEvent, 2],
      ['p50 ms', (p) => p.latency.p50Ms, 2],
      ['p99 ms', (p) => p.latency.p99Ms, 2],
      ['generator CPU %', (p) => p.generatorCpuPercent],
    ])
    if (redis !== undefined)
      out.push(
        `| ${label} | Redis CPU ms per 1,000 published events | | ${n(redis.redisCpuMsPer1000Events, 2)} | |`,
      )
  }
  out.push('')
}

/** The per-process table of a phase or of the idle ramp of ssehub-workers, with the sums. */
function processTable(out: string[], title: string, rows: readonly ProcessFigure[]): void {
  const sum = (get: (p: ProcessFigure) => number | null): number | null =>
    rows.some((p) => get(p) !== null) ? rows.reduce((a, p) => a + (get(p) ?? 0), 0) : null
  const cpu = sum((p) => p.cpuSeconds)
  const events = sum((p) => p.eventsOut)
  out.push(
    `**${title}**`,
    '',
    '| process | pid | connections | events written | CPU s | CPU % of a core | CPU µs per event written | RSS MiB |',
    '| --- | --: | --: | --: | --: | --: | --: | --: |',
    ...rows.map(
      (p) =>
        `| ${p.role === 'primary' ? 'primary' : `worker ${p.node?.replace(/^.*\//, '') ?? ''}`.trim()} | ${p.pid} | ${n(p.connections, 0)} | ${n(p.eventsOut, 0)} | ${n(p.cpuSeconds, 2)} | ${n(p.cpuPercent)} | ${n(p.cpuUsPerEvent, 2)} | ${n(p.rssBytes / 2 ** 20)} |`,
    ),
    `| **all** | | ${n(
      sum((p) => p.connections),
      0,
    )} | ${n(events, 0)} | ${n(cpu, 2)} | ${n(sum((p) => p.cpuPercent))} | ${n(cpu === null || events === null || events === 0 ? null : (cpu * 1e6) / events, 2)} | ${n(rows.reduce((a, p) => a + p.rssBytes, 0) / 2 ** 20)} |`,
    '',
  )
}

/**
 * `ssehub serve --workers N` against ssehub in one process, the same build in the same run
 * (ratio = workers / one process): the hub's totals (summed over the primary and every worker),
 * then each process's own figures.
 */
function workersSection(
  out: string[],
  find: FindPhase,
  idleOf: (server: string) => IdleResult | undefined,
  small: number,
  large: number,
  r: BenchResults,
): void {
  const workers = r.settings.hubWorkers as number | undefined
  const clients = r.settings.clients as number
  out.push(
    `## ssehub --workers ${workers ?? 'N'} against ssehub in one process (ssehub-workers / ssehub, same build, same run)`,
    '',
    `ssehub-workers is \`ssehub serve --workers ${workers ?? 'N'}\` (the built CLI, the limits lifted as for ssehub): a primary process that owns the store, sequences every publication and hands each connection to a worker, and the workers that hold the connections. Pinning: ${r.machine.pinning}. Its CPU and RSS are the sums over the primary and every worker (from /proc); the connections and events each worker wrote are its \`/stats\` \`cluster.nodes\` entry. Its event-loop lag is not measured (–).`,
    '',
    '| phase | figure | one process | workers | ratio |',
    '| --- | --- | --: | --: | --: |',
  )
  const one = idleOf('ssehub')
  const many = idleOf('ssehub-workers')
  if (one !== undefined || many !== undefined) {
    const label = `idle ${n(r.settings.connections as number)}`
    const perConn = (i: IdleResult | undefined): number | null =>
      i?.rssPerConnectionBytes == null ? null : i.rssPerConnectionBytes / KiB
    out.push(
      `| ${label} | RSS KiB per connection | ${n(perConn(one))} | ${n(perConn(many))} | ${ratio(perConn(many), perConn(one))} |`,
      `| ${label} | held: opened of ${n(r.settings.held as number)} | ${n(one?.held.opened, 0)} | ${n(many?.held.opened, 0)} | |`,
    )
  }
  const phases: [string, PhaseResult | undefined, PhaseResult | undefined][] = [
    [
      `broadcast ${n(large)}, max`,
      find('ssehub', 'broadcast', large, 'max'),
      find('ssehub-workers', 'broadcast', large, 'max'),
    ],
    [
      `broadcast ${n(small)}, ${n(r.settings.rate as number)}/s`,
      find('ssehub', 'broadcast', small, 'rate'),
      find('ssehub-workers', 'broadcast', small, 'rate'),
    ],
    [
      `one-to-one ${n(clients)} client ids`,
      find('ssehub', 'one-to-one', clients, 'max'),
      find('ssehub-workers', 'one-to-one', clients, 'max'),
    ],
  ]
  const batch = r.phases.find(
    (p) => p.server === 'ssehub-workers' && p.scenario.includes('(batch)'),
  )?.scenario
  if (batch !== undefined)
    phases.push([
      batch,
      find('ssehub', batch, clients, 'max'),
      find('ssehub-workers', batch, clients, 'max'),
    ])
  for (const [label, single, several] of phases) {
    if (single === undefined && several === undefined) continue
    comparisonRows(out, label, single, several, [
      ['publishes/s', (p) => p.publishesPerSecond],
      ['delivered events/s', (p) => p.deliveredPerSecond],
      ['missed', (p) => p.missed, 0],
      ['hub CPU µs per delivered event (all processes)', (p) => p.serverCpuUsPerEvent, 2],
      ['hub CPU % of a core (all processes)', (p) => p.serverCpuPercent],
      ['p50 ms', (p) => p.latency.p50Ms, 2],
      ['p99 ms', (p) => p.latency.p99Ms, 2],
      ['generator CPU %', (p) => p.generatorCpuPercent],
    ])
  }
  out.push('', '### Each process of ssehub-workers', '')
  if (many?.processes !== undefined)
    processTable(
      out,
      `idle, at ${n(r.settings.connections as number)} connections (CPU: the ramp up to there)`,
      many.processes,
    )
  const seen = new Set<string>()
  for (const p of r.phases) {
    if (p.server !== 'ssehub-workers' || p.processes === undefined) continue
    const key = `${p.scenario}|${p.subscribers}|${p.mode}`
    if (seen.has(key)) continue
    seen.add(key)
    const row = find('ssehub-workers', p.scenario, p.subscribers, p.mode)
    if (row?.processes === undefined) continue
    const how =
      p.mode === 'max' ? 'as fast as accepted' : `${n(p.offeredEventsPerSecond)} events/s offered`
    processTable(
      out,
      `${p.scenario}, ${n(p.subscribers)} ${p.scenario.startsWith('one-to-one') ? 'client ids' : 'subscribers'}, ${how}${row.run === undefined && r.phases.some((q) => q.run !== undefined) ? ' (the median round)' : ''}`,
      row.processes,
    )
  }
  const slow = r.slow.find((s) => s.server === 'ssehub-workers')
  if (slow?.processes !== undefined)
    processTable(out, `slow consumer, ${n(slow.subscribers)} others`, slow.processes)
}

/** Writes `<out>.json`, `<out>.md` and `<out>-<chart>.svg` (folders created); returns the paths. */
export function writeResults(out: string, results: BenchResults): string[] {
  const report = renderReport(results)
  const files: [string, string][] = [
    [`${out}.json`, JSON.stringify(results, null, 2) + '\n'],
    [`${out}.md`, report.markdown],
    ...Object.entries(report.charts).map(([suffix, svg]): [string, string] => [
      `${out}-${suffix}.svg`,
      svg,
    ]),
  ]
  mkdirSync(dirname(out), { recursive: true })
  for (const [path, text] of files) writeFileSync(path, text)
  return files.map(([path]) => path)
}
