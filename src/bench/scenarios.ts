/**
 * The scenarios: idle connections, broadcast fan-out, one-to-one, a slow consumer, and (ssehub
 * alone) what history and multi-topic publishes cost. Each one is bounded in count and time.
 */
import { summarize, type LatencySummary } from './histogram.js'
import { subscribePath, type LoadGenerator, type MergedStats } from './generator.js'
import type { PublishPlan } from './protocol.js'
import {
  sample,
  sampleEach,
  type NodeFigure,
  type ProcessSample,
  type RunningServer,
} from './servers.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const round = (n: number, digits = 2): number => Math.round(n * 10 ** digits) / 10 ** digits

/**
 * One process of a hub of several (`ssehub-workers`) over a phase or the idle ramp: the primary,
 * which owns the store and hands connections over, or a worker, which holds them.
 */
export interface ProcessFigure {
  readonly pid: number
  readonly role: 'primary' | 'worker'
  /** The worker's node id in `/stats`; `null` for the primary. */
  readonly node: string | null
  /** Open connections it held during the phase (`/stats` `cluster.nodes`); `null`: primary. */
  readonly connections: number | null
  /** Events it wrote to its connections in the phase; `null` for the primary and idle. */
  readonly eventsOut: number | null
  /** Its CPU (user + system, /proc) over the phase, or the idle ramp up to `connections`. */
  readonly cpuSeconds: number
  /** `cpuSeconds` over the phase's wall time, in % of one core; `null` for idle. */
  readonly cpuPercent: number | null
  /** Its CPU per event it wrote, in µs; `null` for the primary (it writes to no connection). */
  readonly cpuUsPerEvent: number | null
  /** Its resident memory at the end. */
  readonly rssBytes: number
}

/** /proc and `/stats` figures of each process of a hub of several, at one moment. */
interface ProcessMoment {
  readonly procs: readonly ProcessSample[]
  readonly nodes: readonly NodeFigure[]
}

/** `/stats` first, then /proc: the answer to `/stats` is on the clock before the moment. */
async function processMoment(server: RunningServer): Promise<ProcessMoment | null> {
  if (server.nodes === null || server.pid === null) return null
  const nodes = await server.nodes()
  return { procs: sampleEach(server.pid), nodes }
}

/**
 * Each process's figures between two moments: CPU from /proc, connections and events written
 * from `/stats` (a worker's node id carries its pid). The first process of the tree is the
 * primary; a process that was not there at `before` (a restarted worker) counts from zero.
 */
function processFigures(
  before: ProcessMoment,
  after: ProcessMoment,
  wallS: number | null,
): ProcessFigure[] {
  const primary = after.procs[0]?.pid
  return after.procs.map((p) => {
    const cpuSeconds = round(
      p.cpuSeconds - (before.procs.find((b) => b.pid === p.pid)?.cpuSeconds ?? 0),
    )
    const node = after.nodes.find((n) => n.pid === p.pid)
    const nodeBefore = before.nodes.find((n) => n.pid === p.pid)
    const eventsOut =
      wallS === null || node === undefined ? null : node.eventsOut - (nodeBefore?.eventsOut ?? 0)
    return {
      pid: p.pid,
      role: p.pid === primary && node === undefined ? 'primary' : 'worker',
      node: node?.node ?? null,
      // Held during the phase: counted before the publishing (the phase closes none).
      connections: (wallS === null ? node : (nodeBefore ?? node))?.connections ?? null,
      eventsOut,
      cpuSeconds,
      cpuPercent: wallS === null ? null : round((100 * cpuSeconds) / wallS, 1),
      cpuUsPerEvent:
        eventsOut === null || eventsOut === 0 ? null : round((cpuSeconds * 1e6) / eventsOut),
      rssBytes: p.rssBytes,
    }
  })
}

/** One step of the idle ramp: what the server holds at that many connections. */
export interface IdleStep {
  readonly connections: number
  readonly failed: number
  readonly rssBytes: number | null
  readonly fds: number | null
  readonly lagP99Ms: number | null
}

/** The idle scenario of one server. */
export interface IdleResult {
  readonly server: string
  readonly baselineRssBytes: number | null
  readonly steps: readonly IdleStep[]
  /** (RSS at `connections` - baseline) / connections, at the target of the idle scenario. */
  readonly rssPerConnectionBytes: number | null
  readonly connections: number
  readonly held: { readonly target: number; readonly opened: number; readonly failed: number }
  readonly errors: readonly string[]
  /**
   * `ssehub-workers` only: each process at `connections` (its connections and RSS, its CPU over
   * the ramp up to there).
   */
  readonly processes?: readonly ProcessFigure[]
}

/** Ramps to `connections`, then on to `held`, sampling memory, fds and lag at each step. */
export async function idle(
  server: RunningServer,
  gen: LoadGenerator,
  connections: number,
  held: number,
  log: (line: string) => void,
): Promise<IdleResult> {
  const top = Math.max(connections, held)
  const marks = [...new Set([0.1, 0.25, 0.5, 1].map((f) => Math.round(connections * f)))]
  if (held > connections) marks.push(held)
  await sleep(500)
  const baseline = server.pid === null ? null : sample(server.pid).rssBytes
  const start = await processMoment(server)
  let atTargetProcesses: ProcessFigure[] | undefined
  await server.lag()
  const steps: IdleStep[] = []
  const errors: string[] = []
  let opened = 0
  let failed = 0
  for (const mark of marks.filter((m) => m > 0 && m <= top)) {
    const paths = Array.from({ length: mark - opened - failed }, (_, i) =>
      subscribePath(server.dialect, { topic: `idle-${(opened + failed + i) % 100}` }),
    )
    const result = await gen.open(paths)
    opened += result.opened
    failed += result.failed
    errors.push(...result.errors)
    await sleep(1500)
    const proc = server.pid === null ? null : sample(server.pid)
    if (start !== null && atTargetProcesses === undefined && opened + failed >= connections) {
      const now = await processMoment(server)
      if (now !== null) atTargetProcesses = processFigures(start, now, null)
    }
    const lag = await server.lag()
    steps.push({
      connections: opened,
      failed,
      rssBytes: proc?.rssBytes ?? null,
      fds: proc?.fds ?? null,
      lagP99Ms: lag?.lagP99Ms ?? null,
    })
    log(
      `  idle ${opened} open, ${failed} failed, rss ${proc === null ? '?' : (proc.rssBytes / 2 ** 20).toFixed(1)} MiB`,
    )
  }
  const atTarget = steps.find((s) => s.connections + s.failed >= connections) ?? steps.at(-1)
  const rssPerConnectionBytes =
    baseline === null || atTarget?.rssBytes == null || atTarget.connections === 0
      ? null
      : Math.round((atTarget.rssBytes - baseline) / atTarget.connections)
  await gen.closeAll()
  await sleep(1000)
  return {
    server: server.name,
    baselineRssBytes: baseline,
    steps,
    rssPerConnectionBytes,
    connections,
    held: { target: held, opened, failed },
    errors: errors.slice(0, 5),
    ...(atTargetProcesses === undefined ? {} : { processes: atTargetProcesses }),
  }
}

/** One measured publishing phase. */
export interface PhaseResult {
  readonly server: string
  readonly scenario: string
  readonly subscribers: number
  readonly mode: 'max' | 'rate'
  readonly offeredEventsPerSecond: number | null
  readonly published: number
  readonly publishFailures: number
  readonly publishesPerSecond: number
  readonly delivered: number
  readonly expected: number
  readonly missed: number
  readonly deliveredPerSecond: number
  readonly latency: LatencySummary
  readonly publishRtt: LatencySummary
  readonly serverCpuPercent: number | null
  readonly serverCpuUsPerEvent: number | null
  readonly generatorCpuPercent: number
  readonly serverRssGrowthBytes: number | null
  readonly closedByServer: number
  /**
   * The redis-server's CPU (user + system, from /proc) per 1,000 published events (entries it
   * appended), in ms; only for `ssehub-redis`.
   */
  readonly redisCpuMsPer1000Events?: number | null
  /** Latency histogram (bucket counts) for the charts. */
  readonly histogram: readonly number[]
  /** Which round of `--repeat` (1-based), when there were several. */
  readonly run?: number
  /** `ssehub-workers` only: each process of the hub in the phase (the totals sum them). */
  readonly processes?: readonly ProcessFigure[]
}

/** Publishes per `plan`, waits for the deliveries (bounded), and measures both sides. */
async function measure(
  server: RunningServer,
  gen: LoadGenerator,
  label: { scenario: string; subscribers: number },
  plan: PublishPlan,
  recipientsPerPublish: number,
): Promise<PhaseResult> {
  await gen.reset()
  // Asked before the CPU window opens: the `/stats` answer is not the phase's cost.
  const momentBefore = await processMoment(server)
  const before = server.pid === null ? null : sample(server.pid)
  const redisBefore = server.redisPid === null ? null : sample(server.redisPid)
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const published = await gen.publish(plan)
  // Not a measurement: a hub that refused every publish (a key, a limit) is a failed phase.
  if (published.accepted === 0 && published.failed > 0)
    throw new Error(
      `every publish was refused (${published.firstFailure ?? 'no answer'})` +
        (published.firstFailure?.startsWith('401') === true
          ? ': the hub has a publish key, pass it with --key'
          : ''),
    )
  const expected = published.accepted * recipientsPerPublish
  // Wait for the deliveries: until all arrived, or nothing arrived for 1 s, at most 20 s.
  let stats: MergedStats = await gen.stats()
  let lastGrowth = performance.now()
  let lastReceived = stats.received
  const deadline = performance.now() + 20_000
  while (stats.received < expected && performance.now() < deadline) {
    await sleep(50)
    stats = await gen.stats()
    if (stats.received !== lastReceived) {
      lastReceived = stats.received
      lastGrowth = performance.now()
    } else if (performance.now() - lastGrowth > 1000) break
  }
  const end = stats.received >= expected ? performance.now() : lastGrowth
  const wallS = Math.max(1e-3, (end - t0) / 1000)
  const after = server.pid === null ? null : sample(server.pid)
  const procsAfter = momentBefore === null || server.pid === null ? null : sampleEach(server.pid)
  const redisAfter = server.redisPid === null ? null : sample(server.redisPid)
  const cpu = process.cpuUsage(cpu0)
  const serverCpu = before === null || after === null ? null : after.cpuSeconds - before.cpuSeconds
  const delivered = stats.received
  // /stats asked once the CPU window has closed (procsAfter is the moment of `after`).
  const momentAfter =
    procsAfter === null || server.nodes === null
      ? null
      : { procs: procsAfter, nodes: await server.nodes() }
  return {
    server: server.name,
    scenario: label.scenario,
    subscribers: label.subscribers,
    mode: plan.mode,
    offeredEventsPerSecond: plan.mode === 'rate' ? plan.ratePerSecond * recipientsPerPublish : null,
    published: published.accepted,
    publishFailures: published.failed,
    publishesPerSecond: Math.round(published.accepted / published.elapsedS),
    delivered,
    expected,
    missed: Math.max(0, expected - delivered),
    deliveredPerSecond: Math.round(delivered / wallS),
    latency: summarize(stats.histogram),
    publishRtt: summarize(Float64Array.from(published.rttHistogram)),
    serverCpuPercent: serverCpu === null ? null : round((100 * serverCpu) / wallS, 1),
    serverCpuUsPerEvent:
      serverCpu === null || delivered === 0 ? null : round((serverCpu * 1e6) / delivered),
    generatorCpuPercent: round((100 * (cpu.user + cpu.system)) / 1e6 / wallS, 1),
    serverRssGrowthBytes:
      before === null || after === null ? null : after.rssBytes - before.rssBytes,
    closedByServer: stats.closedByServer,
    ...(redisBefore === null || redisAfter === null
      ? {}
      : {
          redisCpuMsPer1000Events:
            published.accepted === 0
              ? null
              : round(
                  (1e6 * (redisAfter.cpuSeconds - redisBefore.cpuSeconds)) / published.accepted,
                ),
        }),
    histogram: Array.from(stats.histogram),
    ...(momentBefore === null || momentAfter === null
      ? {}
      : { processes: processFigures(momentBefore, momentAfter, wallS) }),
  }
}

/** Bounds of one publishing phase. */
export interface PhaseOptions {
  readonly seconds: number
  readonly maxPublishes: number
}

async function subscribe(
  server: RunningServer,
  gen: LoadGenerator,
  targets: readonly { topic?: string; clientId?: string }[],
): Promise<void> {
  const result = await gen.open(targets.map((t) => subscribePath(server.dialect, t)))
  if (result.failed > 0)
    throw new Error(
      `${result.failed} of ${targets.length} subscriptions failed: ${result.errors.join('; ')}`,
    )
  await sleep(300)
}

/** Broadcast fan-out to `subscribers` on one topic: as fast as accepted, then at `rate`/s. */
export async function broadcast(
  server: RunningServer,
  gen: LoadGenerator,
  subscribers: number,
  rate: number,
  options: PhaseOptions,
): Promise<PhaseResult[]> {
  await subscribe(
    server,
    gen,
    Array.from({ length: subscribers }, () => ({ topic: 'bench' })),
  )
  const base = {
    dialect: server.dialect,
    kind: 'topic' as const,
    targets: [['bench']],
    seconds: options.seconds,
    maxPublishes: options.maxPublishes,
    paddingBytes: 0,
  }
  const label = { scenario: 'broadcast', subscribers }
  const rows = [
    await measure(
      server,
      gen,
      label,
      { ...base, mode: 'max', ratePerSecond: 0, concurrency: 2 },
      subscribers,
    ),
    await measure(
      server,
      gen,
      label,
      { ...base, mode: 'rate', ratePerSecond: rate, concurrency: 4 },
      subscribers,
    ),
  ]
  await gen.closeAll()
  await sleep(500)
  return rows
}

/**
 * One-to-one: `clients` client ids with one stream each, round-robin publishes, closed loop; for
 * ssehub (and ssehub-workers) also through its batch endpoint, `batch` events per request (its
 * own row).
 */
export async function oneToOne(
  server: RunningServer,
  gen: LoadGenerator,
  clients: number,
  options: PhaseOptions,
  batch = 10,
): Promise<PhaseResult[]> {
  const ids = Array.from({ length: clients }, (_, i) => `client-${i}`)
  await subscribe(
    server,
    gen,
    ids.map((clientId) => ({ clientId })),
  )
  const plan: PublishPlan = {
    dialect: server.dialect,
    kind: 'clientId',
    targets: ids.map((id) => [id]),
    mode: 'max',
    ratePerSecond: 0,
    concurrency: 16,
    seconds: options.seconds,
    maxPublishes: options.maxPublishes * 50,
    paddingBytes: 0,
  }
  const rows = [
    await measure(server, gen, { scenario: 'one-to-one', subscribers: clients }, plan, 1),
  ]
  // ssehub's batch endpoint, in its own row: the same events, 10 per request.
  if ((server.name === 'ssehub' || server.name === 'ssehub-workers') && batch > 1) {
    rows.push(
      await measure(
        server,
        gen,
        { scenario: `one-to-one, ${batch} events/POST (batch)`, subscribers: clients },
        { ...plan, batch, maxPublishes: Math.ceil(plan.maxPublishes / batch) },
        1,
      ),
    )
  }
  await gen.closeAll()
  await sleep(500)
  return rows
}

/** The slow-consumer scenario: the others' figures, and what became of the stalled stream. */
export interface SlowResult extends PhaseResult {
  readonly slowClosedByServer: boolean
  readonly slowBytesAfterResume: number
}

/**
 * A slow consumer: one stream stops reading while `subscribers` others get 8 KiB events at
 * `rate`/s; the others' latency is measured, and whether the server dropped the stalled one.
 */
export async function slowConsumer(
  server: RunningServer,
  gen: LoadGenerator,
  subscribers: number,
  rate: number,
  options: PhaseOptions,
): Promise<SlowResult> {
  await subscribe(
    server,
    gen,
    Array.from({ length: subscribers }, () => ({ topic: 'slow' })),
  )
  const slow = await gen.openSlow(subscribePath(server.dialect, { topic: 'slow' }))
  if (slow.opened !== 1) throw new Error('the stalled stream did not open')
  const row = await measure(
    server,
    gen,
    { scenario: 'slow-consumer', subscribers },
    {
      dialect: server.dialect,
      kind: 'topic',
      targets: [['slow']],
      mode: 'rate',
      ratePerSecond: rate,
      concurrency: 4,
      seconds: options.seconds,
      maxPublishes: options.maxPublishes,
      paddingBytes: 8192,
    },
    subscribers,
  )
  const status = await gen.slowStatus()
  await gen.closeAll()
  await sleep(500)
  return {
    ...row,
    slowClosedByServer: status.closedByServer,
    slowBytesAfterResume: status.bytesAfterResume,
  }
}

/**
 * ssehub alone, what features cost: `subscribers` streams over 100 topics (one each), publishes
 * to 1, 10 or 100 topics, as fast as accepted. Run once per history setting by the caller.
 */
export async function topicsPerPublish(
  server: RunningServer,
  gen: LoadGenerator,
  subscribers: number,
  label: string,
  options: PhaseOptions,
): Promise<PhaseResult[]> {
  const topicCount = 100
  await subscribe(
    server,
    gen,
    Array.from({ length: subscribers }, (_, i) => ({ topic: `f-${i % topicCount}` })),
  )
  const rows: PhaseResult[] = []
  for (const k of [1, 10, 100]) {
    const targets = [Array.from({ length: k }, (_, i) => `f-${i}`)]
    const recipients = Array.from({ length: subscribers }, (_, i) => i % topicCount).filter(
      (t) => t < k,
    ).length
    rows.push(
      await measure(
        server,
        gen,
        { scenario: `${label}, ${k} topic${k === 1 ? '' : 's'}/publish`, subscribers },
        {
          dialect: server.dialect,
          kind: 'topic',
          targets,
          mode: 'max',
          ratePerSecond: 0,
          concurrency: 4,
          seconds: options.seconds,
          maxPublishes: options.maxPublishes * 10,
          paddingBytes: 0,
        },
        recipients,
      ),
    )
  }
  await gen.closeAll()
  await sleep(500)
  return rows
}
