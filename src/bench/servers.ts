/**
 * Starts the servers under test as child processes pinned to core 0 (`taskset -c 0` when it
 * exists; `ssehub-workers`, one hub over N processes, on cores 0..N-1), and reads their memory,
 * CPU and open files from /proc — the same way for Node and nginx, summed over a server's process
 * tree. Every server listens on 127.0.0.1 only.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { connect, createServer } from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { builtFile } from './built.js'
import type { ServerName } from './options.js'
import { nchanConfig } from './peers/nchan-config.js'
import type { Dialect } from './protocol.js'

/** A running server under test. */
export interface RunningServer {
  readonly name: ServerName | 'external'
  readonly version: string
  readonly port: number
  readonly host: string
  readonly dialect: Dialect
  /** The process id, when the bench started it (else /proc figures are unavailable). */
  readonly pid: number | null
  /** The redis-server the bench started for it (`ssehub-redis`), else `null`: its CPU is its own. */
  readonly redisPid: number | null
  /**
   * Each node of a hub of several processes (`ssehub-workers`), from its `/stats`
   * `cluster.nodes`; `null` for every other server.
   */
  readonly nodes: (() => Promise<NodeFigure[]>) | null
  /** Event-loop lag since the last call (Node servers only). */
  lag(): Promise<{ lagP50Ms: number; lagP99Ms: number; lagMaxMs: number } | null>
  stop(): Promise<void>
}

/** One worker of `ssehub serve --workers N` as its `/stats` reports it. */
export interface NodeFigure {
  /** Its node id: `<hostname>:<pid>/w<n>`. */
  readonly node: string
  /** Its process id, read from the node id; `null` when the id does not carry one. */
  readonly pid: number | null
  readonly connections: number
  /** Events it has written to its connections since it started. */
  readonly eventsOut: number
}

type NodeServer = Exclude<ServerName, 'nchan' | 'ssehub-workers'>

const nodeScripts: Record<NodeServer, string> = {
  ssehub: 'ssehub-server.js',
  // The same script: BENCH_REDIS_URL gives it the Redis broker.
  'ssehub-redis': 'ssehub-server.js',
  'better-sse': 'better-sse-server.js',
  'naive-express': 'naive-express-server.js',
  'node-floor': 'node-floor-server.js',
}

const CLK_TCK = 100
const nchanModule = '/usr/lib/nginx/modules/ngx_nchan_module.so'
const require = createRequire(import.meta.url)

/** Whether `taskset` exists here (then servers run on core 0, the generator on core 1). */
export const hasTaskset = spawnSync('taskset', ['-V']).status === 0

/** The cores of this machine. */
const coreCount = cpus().length

/**
 * Where the processes of a run go. Every server runs on core 0, except `ssehub-workers`, which
 * runs on cores 0..N-1 (as many as there are): N workers pinned to one core would measure one
 * core's worth, not what `--workers N` is for. The generator (and the redis-server of
 * `ssehub-redis`) runs on core 1, or on core N when the run has `ssehub-workers` and the machine
 * has a core past the hub's; otherwise it shares core 1 with a worker, and the report says so.
 */
export interface Placement {
  /** The `taskset -c` list of `ssehub-workers`. */
  readonly hubCores: string
  /** The core of the load generator and of redis-server. */
  readonly generatorCore: number
  /** Whether the generator shares a core with the hub's workers. */
  readonly shared: boolean
}

/** The placement of a run; `hubWorkers` is `null` when it does not run `ssehub-workers`. */
export function placement(hubWorkers: number | null, cores = coreCount): Placement {
  if (hubWorkers === null || hubWorkers <= 1)
    return { hubCores: '0', generatorCore: 1, shared: false }
  const last = Math.min(hubWorkers, cores) - 1
  const hubCores = last === 0 ? '0' : `0-${last}`
  return hubWorkers < cores
    ? { hubCores, generatorCore: hubWorkers, shared: false }
    : { hubCores, generatorCore: 1, shared: true }
}

// Servers still running: killed when the bench exits for any reason (nginx would outlive it).
const live = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

function track(child: ChildProcess): ChildProcess {
  live.add(child)
  child.once('exit', () => live.delete(child))
  return child
}

function pinned(command: string, args: string[], cores: number | string): [string, string[]] {
  return hasTaskset ? ['taskset', ['-c', String(cores), command, ...args]] : [command, args]
}

function packageVersion(name: string): string {
  try {
    // Read from node_modules: some packages (better-sse) do not export their package.json.
    const main = require.resolve(name)
    const path =
      main.slice(0, main.lastIndexOf(`/node_modules/${name}/`)) +
      `/node_modules/${name}/package.json`
    return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

/** The version of this ssehub (the package or checkout the bench runs from). */
export function ssehubVersion(): string {
  // The same relative path from src/bench and dist/bench.
  const path = fileURLToPath(new URL('../../package.json', import.meta.url))
  return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version
}

// The peers that need a package ssehub does not depend on: a checkout has them as dev
// dependencies; beside an installed ssehub, `npm install` them to compare.
const peerPackages: Partial<Record<ServerName, string>> = {
  'better-sse': 'better-sse',
  'naive-express': 'express',
}

/** Why a peer cannot run here (one line, what to install), or null when it can. */
export function absence(name: ServerName): string | null {
  const pkg = peerPackages[name]
  if (pkg !== undefined) {
    try {
      require.resolve(pkg)
    } catch {
      return `needs the ${pkg} package: npm install ${pkg}`
    }
  }
  if (name === 'ssehub-redis' && spawnSync('redis-server', ['--version']).error !== undefined)
    return 'needs redis-server on the PATH (Debian: apt-get install redis-server)'
  if (name === 'ssehub-workers') {
    const cli = builtFile('../cli/main.js')
    return existsSync(cli) ? null : `${cli} is missing: run npm run build`
  }
  if (name !== 'nchan') {
    const script = builtFile(`peers/${nodeScripts[name]}`)
    return existsSync(script) ? null : `${script} is missing: run npm run build`
  }
  if (spawnSync('nginx', ['-v']).error !== undefined)
    return 'needs nginx with the nchan module (Debian: apt-get install nginx libnginx-mod-nchan)'
  if (!existsSync(nchanModule))
    return `needs the nchan module of nginx at ${nchanModule} (Debian: apt-get install libnginx-mod-nchan)`
  return null
}

function nchanVersion(): string {
  const nginx = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim().split('/')[1] ?? '?'
  const query = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'libnginx-mod-nchan'], {
    encoding: 'utf8',
  })
  const nchan = query.status === 0 ? query.stdout.replace(/^\d+:/, '') : '?'
  return `nchan ${nchan}, nginx ${nginx}`
}

/** The pid and its descendants. */
function tree(pid: number): number[] {
  const out = [pid]
  for (let i = 0; i < out.length && i < 64; i++) {
    const p = out[i]!
    try {
      for (const task of readdirSync(`/proc/${p}/task`)) {
        const children = readFileSync(`/proc/${p}/task/${task}/children`, 'utf8').trim()
        if (children !== '') out.push(...children.split(/\s+/).map(Number))
      }
    } catch {
      // The process exited meanwhile.
    }
  }
  return out
}

/** Resident memory, CPU seconds and open files of a process tree, from /proc. */
export interface ProcSample {
  readonly rssBytes: number
  readonly cpuSeconds: number
  readonly fds: number
}

/** One process of a server's tree, sampled. */
export interface ProcessSample extends ProcSample {
  readonly pid: number
}

/** Samples each process of a tree apart (the primary of `ssehub-workers` first, then workers). */
export function sampleEach(pid: number): ProcessSample[] {
  return tree(pid).map((p) => ({ pid: p, ...sampleOne(p) }))
}

function sampleOne(p: number): ProcSample {
  try {
    const status = readFileSync(`/proc/${p}/status`, 'utf8')
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return {
      rssBytes: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024,
      cpuSeconds: (Number(fields[11]) + Number(fields[12])) / CLK_TCK,
      fds: readdirSync(`/proc/${p}/fd`).length,
    }
  } catch {
    // The process exited meanwhile.
    return { rssBytes: 0, cpuSeconds: 0, fds: 0 }
  }
}

/**
 * Samples a process tree (the server and its children, e.g. nginx's workers or the worker
 * processes of `ssehub-workers`): the sums over every process.
 */
export function sample(pid: number): ProcSample {
  let rssBytes = 0
  let cpuSeconds = 0
  let fds = 0
  for (const p of sampleEach(pid)) {
    rssBytes += p.rssBytes
    cpuSeconds += p.cpuSeconds
    fds += p.fds
  }
  return { rssBytes, cpuSeconds, fds }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}`)
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy()
        resolve(true)
      })
      socket.on('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`nothing listened on ${port} within ${timeoutMs} ms`)
}

function stopChild(child: ChildProcess, timeoutMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

async function startNode(name: NodeServer, env: Record<string, string>): Promise<RunningServer> {
  const script = builtFile(`peers/${nodeScripts[name]}`)
  const [command, args] = pinned(
    process.execPath,
    // BENCH_NODE_ARGS: extra node flags for the servers, e.g. `--cpu-prof --cpu-prof-dir=prof`.
    [...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== ''), script],
    0,
  )
  const child = track(
    spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, ...env, BENCH_PORT: '0' },
    }),
  )
  let out = ''
  let err = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk.slice(0, 4000)))
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${err}`)), 20_000)
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk
      const match = /listening (\d+)/.exec(out)
      if (match !== null) {
        clearTimeout(timer)
        resolve(Number(match[1]))
      }
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${name} exited with ${code}: ${err}`))
    })
  })
  const versions: Record<NodeServer, () => string> = {
    ssehub: ssehubVersion,
    'ssehub-redis': () => `${ssehubVersion()}, ${redisVersion()}`,
    'better-sse': () => packageVersion('better-sse'),
    'naive-express': () => `express ${packageVersion('express')}`,
    'node-floor': () => `node:net, ${process.version}`,
  }
  const version = versions[name]()
  return {
    name,
    version,
    port,
    host: '127.0.0.1',
    dialect: 'json',
    pid: child.pid ?? null,
    redisPid: null,
    nodes: null,
    lag: () =>
      new Promise((resolve) => {
        const timer = setTimeout(() => resolve(null), 2000)
        child.once('message', (message) => {
          clearTimeout(timer)
          resolve(message as { lagP50Ms: number; lagP99Ms: number; lagMaxMs: number })
        })
        child.send('lag')
      }),
    stop: () => stopChild(child),
  }
}

async function startNchan(maxConnections: number): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-bench-nchan-'))
  const port = await freePort()
  const conf = join(dir, 'nginx.conf')
  writeFileSync(conf, nchanConfig({ port, dir, maxConnections, modulePath: nchanModule }))
  const child = await startListening(
    'nginx',
    pinned('nginx', ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], 0),
    port,
  )
  return {
    name: 'nchan',
    version: nchanVersion(),
    port,
    host: '127.0.0.1',
    dialect: 'nchan',
    pid: child.pid ?? null,
    redisPid: null,
    nodes: null,
    lag: () => Promise.resolve(null),
    stop: async () => {
      // SIGTERM is nginx's fast stop; stopChild escalates to SIGKILL after its timeout.
      await stopChild(child)
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

function redisVersion(): string {
  const out = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout ?? ''
  return `redis ${/v=(\S+)/.exec(out)?.[1] ?? '?'}`
}

/**
 * A redis-server for `ssehub-redis` on a free loopback port, without persistence (the bench
 * measures the hub's Redis path, not the disk), pinned to the generator's core: the hub keeps
 * core 0 to itself, as with the memory broker, and Redis's own CPU is read apart.
 */
async function startRedisServer(core: number): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort()
  const child = await startListening(
    'redis-server',
    pinned(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      core,
    ),
    port,
  )
  return { port, child }
}

/**
 * Spawns a server (`[command, args]`, as {@link pinned} gives them) and resolves once it listens
 * on `port`; if it does not within 10 s, it is stopped and the error carries its stderr.
 */
async function startListening(
  name: string,
  [command, args]: readonly [string, string[]],
  port: number,
): Promise<ChildProcess> {
  const child = track(spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] }))
  let err = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk.slice(0, 4000)))
  try {
    await waitForPort(port, child, 10_000)
  } catch (error) {
    await stopChild(child)
    throw new Error(`${name} did not start: ${String(error)} ${err}`, { cause: error })
  }
  return child
}

/**
 * `ssehub serve --workers N` as users run it (the built CLI), with the limits meant for a public
 * server lifted as the `ssehub` server lifts them, on the cores of `placement`. Its event-loop
 * lag is not asked (the CLI has no bench channel): `null`, an empty cell.
 */
async function startHubWorkers(
  workers: number,
  historyMaxEvents: number | undefined,
  where: Placement,
): Promise<RunningServer> {
  const cli = builtFile('../cli/main.js')
  const [command, args] = pinned(
    process.execPath,
    [
      ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== ''),
      cli,
      'serve',
      ...['--host', '127.0.0.1', '--port', '0', '--workers', String(workers)],
      ...['--max-connections', 'off', '--max-connections-per-ip', 'off'],
      ...['--max-connections-per-client', 'off', '--publish-rate', 'off'],
      ...['--max-topics-per-publish', '100', '--no-metrics'],
      ...['--history-max-events', String(historyMaxEvents ?? 10_000)],
      ...(process.env.BENCH_FAST_PATH === '0' ? ['--no-fast-path'] : []),
    ],
    where.hubCores,
  )
  const child = track(spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] }))
  let out = ''
  let err = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk.slice(0, 4000)))
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`ssehub-workers did not start: ${err}`)),
      30_000,
    )
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      // The start line only: the log goes on (a worker's restart) and is not kept.
      if (out.length < 64 * 1024) out += chunk
      const match = /listening on https?:\/\/[^\s"]+:(\d+)/.exec(out)
      if (match !== null) {
        clearTimeout(timer)
        resolve(Number(match[1]))
      }
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`ssehub-workers exited with ${code}: ${err}`))
    })
  })
  const nodes = async (): Promise<NodeFigure[]> => {
    const res = await fetch(`http://127.0.0.1:${port}/stats`, {
      signal: AbortSignal.timeout(5000),
    })
    const body = (await res.json()) as {
      cluster?: {
        nodes?: { node: string; stats: { connections: number; eventsOut: number } }[]
        error?: string
      }
    }
    if (body.cluster?.nodes === undefined)
      throw new Error(`/stats has no cluster nodes: ${body.cluster?.error ?? res.status}`)
    return body.cluster.nodes
      .map((n) => ({
        node: n.node,
        // `<hostname>:<pid>/w<n>` (workers.ts): the pid ties the node to its /proc figures.
        pid: Number(/:(\d+)(?:\/w\d+)?$/.exec(n.node)?.[1] ?? NaN) || null,
        connections: n.stats.connections,
        eventsOut: n.stats.eventsOut,
      }))
      .sort((a, b) => a.node.localeCompare(b.node, 'en', { numeric: true }))
  }
  return {
    name: 'ssehub-workers',
    version: `${ssehubVersion()}, serve --workers ${workers}`,
    port,
    host: '127.0.0.1',
    dialect: 'json',
    // `taskset` execs node: the child's pid is the primary's, and the workers are its children.
    pid: child.pid ?? null,
    redisPid: null,
    nodes,
    lag: () => Promise.resolve(null),
    // SIGTERM drains the workers (the generator has closed its streams by then); a primary killed
    // after the timeout takes its workers with it (they exit when their channel closes).
    stop: () => stopChild(child, 10_000),
  }
}

/** Starts one server (for `ssehub-redis`, its redis-server first). */
export async function startServer(
  name: ServerName,
  options: {
    historyMaxEvents?: number
    maxConnections: number
    /** Worker processes of `ssehub-workers`. @default 2 */
    hubWorkers?: number
    /** Where the hub and redis-server go. @default placement(null) */
    placement?: Placement
  },
): Promise<RunningServer> {
  const where = options.placement ?? placement(null)
  if (name === 'nchan') return startNchan(options.maxConnections)
  if (name === 'ssehub-workers')
    return startHubWorkers(options.hubWorkers ?? 2, options.historyMaxEvents, where)
  const env: Record<string, string> = {}
  if (options.historyMaxEvents !== undefined)
    env.BENCH_HISTORY_MAX_EVENTS = String(options.historyMaxEvents)
  if (name !== 'ssehub-redis') return startNode(name, env)
  const redis = await startRedisServer(where.generatorCore)
  // `taskset` execs redis-server: the child's pid is Redis's.
  const redisPid = redis.child.pid ?? null
  let server: RunningServer
  try {
    server = await startNode(name, { ...env, BENCH_REDIS_URL: `redis://127.0.0.1:${redis.port}` })
  } catch (error) {
    await stopChild(redis.child)
    throw error
  }
  return {
    ...server,
    redisPid,
    stop: async () => {
      await server.stop()
      await stopChild(redis.child)
    },
  }
}

/**
 * A hub the bench did not start (`--url`): no /proc figures. Resolves once `GET /healthz` answers,
 * so that a wrong URL is one line before the run, not a failure in every scenario.
 */
export async function externalServer(url: string): Promise<RunningServer> {
  const parsed = new URL(url)
  if (!/^127\./.test(parsed.hostname) && parsed.hostname !== 'localhost')
    throw new Error(`the bench sends traffic to loopback only, got ${parsed.hostname}`)
  const host = parsed.hostname === 'localhost' ? '127.0.0.1' : parsed.hostname
  const port = Number(parsed.port || 80)
  const health = `http://${host}:${port}/healthz`
  let status: number
  try {
    const res = await fetch(health, { signal: AbortSignal.timeout(5000) })
    await res.body?.cancel()
    status = res.status
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? String(error)
    throw new Error(`no hub answers at ${health} (${cause})`, { cause: error })
  }
  if (status !== 200) throw new Error(`${health} answered ${status}: is the hub healthy?`)
  return {
    name: 'external',
    version: 'unknown',
    port,
    host,
    dialect: 'json',
    pid: null,
    redisPid: null,
    nodes: null,
    lag: () => Promise.resolve(null),
    stop: () => Promise.resolve(),
  }
}
