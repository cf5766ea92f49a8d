/**
 * How many streams `ssehub serve --workers N` holds on this machine, and what a broadcast costs
 * per delivered event, summed over every process of the hub, next to one process in the same
 * run. A process may hold at most ~20,000 open files here (the hard limit), so one process tops
 * out near 19,500 streams; the generators are several processes too, each with its own source
 * address (127.0.0.x), for the same reason and for ephemeral ports.
 *
 *   npm run build && npx tsx bench/workers/capacity.ts --run 1:19000 --run 2:19000 \
 *     --run 2:39000 --events 40 --rate 4 --rounds 3 --out bench/results/workers-run3.json
 *
 * Each `--run W:S` starts a fresh hub with W workers (1: the plain single process) and S streams,
 * publishes `--events` broadcast events at `--rate` per second, waits until every stream got
 * every event (or a timeout), and reads the CPU of every process of the hub from /proc; `--rounds`
 * repeats the publishing on the same hub and reports each round and the median.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'

const CLK_TCK = 100
const PER_GENERATOR = 9_000

interface Options {
  runs: { workers: number; streams: number }[]
  events: number
  rounds: number
  rate: number
  out: string | null
}

function parse(argv: string[]): Options {
  const options: Options = { runs: [], events: 40, rounds: 1, rate: 4, out: null }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    const value = argv[++i]
    if (value === undefined) throw new Error(`${flag} needs a value`)
    if (flag === '--run') {
      const [w, s] = value.split(':').map(Number)
      options.runs.push({ workers: w!, streams: s! })
    } else if (flag === '--events') options.events = Number(value)
    else if (flag === '--rounds') options.rounds = Number(value)
    else if (flag === '--rate') options.rate = Number(value)
    else if (flag === '--out') options.out = value
    else throw new Error(`unknown flag ${flag}`)
  }
  if (options.runs.length === 0)
    options.runs = [
      { workers: 1, streams: 19_000 },
      { workers: 2, streams: 39_000 },
    ]
  return options
}

/** CPU seconds and RSS of one process, from /proc. */
function proc(pid: number): { cpu: number; rss: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    return {
      cpu: (Number(fields[11]) + Number(fields[12])) / CLK_TCK,
      rss: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024,
    }
  } catch {
    return { cpu: 0, rss: 0 }
  }
}

/** The pid and its child processes (the primary and its workers). */
function tree(pid: number): number[] {
  const out = [pid]
  for (let i = 0; i < out.length; i++) {
    try {
      for (const task of readdirSync(`/proc/${out[i]}/task`)) {
        const children = readFileSync(`/proc/${out[i]}/task/${task}/children`, 'utf8').trim()
        if (children !== '') out.push(...children.split(/\s+/).map(Number))
      }
    } catch {
      // exited
    }
  }
  return out
}

function request(
  gen: ChildProcess,
  message: object,
  answer: string,
): Promise<Record<string, number>> {
  return new Promise((resolve) => {
    const listener = (reply: { op: string } & Record<string, number>): void => {
      if (reply.op !== answer) return
      gen.off('message', listener)
      resolve(reply)
    }
    gen.on('message', listener)
    gen.send(message)
  })
}

async function until<T>(read: () => Promise<T | null>, what: string, ms: number): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await read()
    if (value !== null) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

async function run(workers: number, streams: number, options: Options): Promise<object> {
  const bin = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))
  const args = [
    bin,
    'serve',
    '--port',
    '0',
    '--store',
    'memory',
    '--max-connections',
    'off',
    '--max-connections-per-client',
    'off',
    ...(workers > 1 ? ['--workers', String(workers)] : []),
  ]
  const server = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  server.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  const url = await until(
    () => Promise.resolve(/listening on (http:\/\/\S+)/.exec(out)?.[1] ?? null),
    'the hub',
    20_000,
  )
  const port = Number(new URL(url).port)
  const count = Math.ceil(streams / PER_GENERATOR)
  const generators = Array.from({ length: count }, () =>
    fork(fileURLToPath(new URL('./generator.ts', import.meta.url)), [], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  )
  const openStarted = Date.now()
  const opened = await Promise.all(
    generators.map((gen, g) =>
      request(
        gen,
        {
          op: 'open',
          port,
          count: Math.floor(streams / count) + (g < streams % count ? 1 : 0),
          source: `127.0.0.${2 + g}`,
          path: '/events?topic=b',
        },
        'opened',
      ),
    ),
  )
  const openMs = Date.now() - openStarted
  const connected = opened.reduce((sum, o) => sum + o.ok!, 0)
  const failures = opened.reduce((sum, o) => sum + o.failed!, 0)
  const stats = async (): Promise<{
    nodes: { node: string; stats: { connections: number; eventsOut: number } }[]
  }> =>
    (
      (await (await fetch(`${url}/stats`)).json()) as {
        cluster: { nodes: { node: string; stats: { connections: number; eventsOut: number } }[] }
      }
    ).cluster
  await until(
    async () =>
      (await stats()).nodes.reduce((sum, n) => sum + n.stats.connections, 0) >= connected
        ? true
        : null,
    'the hub to count every stream',
    30_000,
  )
  const pids = tree(server.pid!)
  // Rounds of the publishing phase on the same hub: this VM's speed drifts, and other work on
  // it comes and goes; the median of the rounds is reported, and every round.
  const rounds: { cpuMicrosPerDeliveredEvent: number; deliverMs: number; perProcess: number[] }[] =
    []
  let counts: Record<string, number>[] = []
  let delivered = 0
  let deliverMs = 0
  const before0 = pids.map(proc)
  for (let round = 1; round <= options.rounds; round++) {
    const before = pids.map(proc)
    const publishStarted = Date.now()
    for (let i = 0; i < options.events; i++) {
      const due = publishStarted + (i * 1000) / options.rate
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()))
      const response = await fetch(`${url}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'b', data: 'x' }),
      })
      await response.arrayBuffer()
    }
    const expected = options.events * round
    await until(
      async () => {
        counts = await Promise.all(
          generators.map((gen) => request(gen, { op: 'counts' }, 'counts')),
        )
        return counts.every((c) => c.min === expected) ? true : null
      },
      'every stream to get every event',
      120_000,
    ).catch(() => undefined)
    deliverMs = Date.now() - publishStarted
    const after = pids.map(proc)
    const total = counts.reduce((sum, c) => sum + c.total!, 0)
    const inRound = total - delivered
    delivered = total
    const perProcess = pids.map((_, i) => +(after[i]!.cpu - before[i]!.cpu).toFixed(2))
    const cpuRound = perProcess.reduce((sum, c) => sum + c, 0)
    rounds.push({
      cpuMicrosPerDeliveredEvent: +((cpuRound * 1e6) / Math.max(1, inRound)).toFixed(3),
      deliverMs,
      perProcess,
    })
  }
  const after = pids.map(proc)
  const before = before0
  const cluster = await stats()
  const perProcess = pids.map((pid, i) => ({
    pid,
    role: i === 0 ? (workers > 1 ? 'primary' : 'hub') : 'worker',
    cpuSeconds: +(after[i]!.cpu - before[i]!.cpu).toFixed(2),
    rssMiB: +(after[i]!.rss / 1048576).toFixed(1),
  }))
  const cpu = perProcess.reduce((sum, p) => sum + p.cpuSeconds, 0)
  const result = {
    workers,
    streams,
    connected,
    failures,
    openMs,
    events: options.events * options.rounds,
    delivered,
    missed: connected * options.events * options.rounds - delivered,
    closedStreams: counts.reduce((sum, c) => sum + c.closed!, 0),
    deliverMs,
    cpuSeconds: +cpu.toFixed(2),
    cpuMicrosPerDeliveredEvent: +((cpu * 1e6) / Math.max(1, delivered)).toFixed(3),
    medianCpuMicrosPerDeliveredEvent: [...rounds.map((r) => r.cpuMicrosPerDeliveredEvent)].sort(
      (a, b) => a - b,
    )[Math.floor(rounds.length / 2)],
    rounds,
    perProcess,
    perWorker: cluster.nodes.map((n) => ({
      node: n.node,
      connections: n.stats.connections,
      eventsOut: n.stats.eventsOut,
    })),
  }
  for (const gen of generators) gen.send({ op: 'exit' })
  server.kill('SIGTERM')
  await new Promise((r) => server.once('exit', r))
  return result
}

const options = parse(process.argv.slice(2))
const results: object[] = []
for (const { workers, streams } of options.runs) {
  const result = await run(workers, streams, options)
  console.log(JSON.stringify(result))
  results.push(result)
}
if (options.out !== null) {
  writeFileSync(
    options.out,
    JSON.stringify(
      {
        command: `npx tsx bench/workers/capacity.ts ${process.argv.slice(2).join(' ')}`,
        machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
        date: new Date().toISOString(),
        results,
      },
      null,
      2,
    ) + '\n',
  )
}
