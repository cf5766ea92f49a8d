/**
 * Starts the servers under test as child processes pinned to core 0 (`taskset -c 0` when it
 * exists), and reads their memory, CPU and open files from /proc — the same way for Node and
 * nginx. Every server listens on 127.0.0.1 only.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
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
  /** Event-loop lag since the last call (Node servers only). */
  lag(): Promise<{ lagP50Ms: number; lagP99Ms: number; lagMaxMs: number } | null>
  stop(): Promise<void>
}

const nodeScripts: Record<Exclude<ServerName, 'nchan'>, string> = {
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

function pinned(command: string, args: string[], core: number): [string, string[]] {
  return hasTaskset ? ['taskset', ['-c', String(core), command, ...args]] : [command, args]
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

/** Samples a process tree (the server and its children, e.g. nginx's workers). */
export function sample(pid: number): ProcSample {
  let rssBytes = 0
  let cpuSeconds = 0
  let fds = 0
  for (const p of tree(pid)) {
    try {
      const status = readFileSync(`/proc/${p}/status`, 'utf8')
      rssBytes += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      cpuSeconds += (Number(fields[11]) + Number(fields[12])) / CLK_TCK
      fds += readdirSync(`/proc/${p}/fd`).length
    } catch {
      // The process exited meanwhile.
    }
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

async function startNode(
  name: Exclude<ServerName, 'nchan'>,
  env: Record<string, string>,
): Promise<RunningServer> {
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
  const versions: Record<Exclude<ServerName, 'nchan'>, () => string> = {
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
  const [command, args] = pinned('nginx', ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], 0)
  const child = track(spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] }))
  let err = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk.slice(0, 4000)))
  try {
    await waitForPort(port, child, 10_000)
  } catch (error) {
    await stopChild(child)
    throw new Error(`nginx did not start: ${String(error)} ${err}`, { cause: error })
  }
  return {
    name: 'nchan',
    version: nchanVersion(),
    port,
    host: '127.0.0.1',
    dialect: 'nchan',
    pid: child.pid ?? null,
    redisPid: null,
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
 * measures the hub's Redis path, not the disk), pinned to the generator's core 1: the hub keeps
 * core 0 to itself, as with the memory broker, and Redis's own CPU is read apart.
 */
async function startRedisServer(): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort()
  const [command, args] = pinned(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    1,
  )
  const child = track(spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] }))
  let err = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk.slice(0, 4000)))
  try {
    await waitForPort(port, child, 10_000)
  } catch (error) {
    await stopChild(child)
    throw new Error(`redis-server did not start: ${String(error)} ${err}`, { cause: error })
  }
  return { port, child }
}

/** Starts one server (for `ssehub-redis`, its redis-server first). */
export async function startServer(
  name: ServerName,
  options: { historyMaxEvents?: number; maxConnections: number },
): Promise<RunningServer> {
  if (name === 'nchan') return startNchan(options.maxConnections)
  const env: Record<string, string> = {}
  if (options.historyMaxEvents !== undefined)
    env.BENCH_HISTORY_MAX_EVENTS = String(options.historyMaxEvents)
  if (name !== 'ssehub-redis') return startNode(name, env)
  const redis = await startRedisServer()
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
    lag: () => Promise.resolve(null),
    stop: () => Promise.resolve(),
  }
}
