/**
 * `ssehub serve --workers N`: N worker processes (node:cluster) serve HTTP on the one port — the
 * primary accepts and hands each connection to the worker with the fewest — and they are one
 * hub. Without `--redis` the primary owns the hub's broker (memory or durable) through an
 * {@link IpcHost}, and every worker reaches it through an {@link IpcBroker}: one sequencer, so
 * ids, history, targets, finished topics, client commands, presence and the connection limits
 * are hub-wide. With `--redis`, each worker is a Redis node and the primary only supervises.
 *
 * Faults: a worker that dies is forked again (its clients reconnect to the others and resume
 * exactly); a worker whose primary is gone exits at once (no orphans); SIGTERM/SIGINT on the
 * primary drains every worker within `--shutdown-timeout` and then stops.
 */
import cluster, { type Worker } from 'node:cluster'
import { EventEmitter } from 'node:events'
import { Socket, createServer, type AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { AggregatorRegistry, type Registry } from 'prom-client'
import type { Broker } from '../broker/broker.js'
import { IpcBroker } from '../broker/ipc.js'
import { IpcChannel } from '../broker/ipc-channel.js'
import { IpcHost } from '../broker/ipc-host.js'
import { MemoryBroker } from '../broker/memory.js'
import { defaultNodeId } from '../broker/node-id.js'
import { resolveHubOptions } from '../hub/hub-options.js'
import { resolveServerOptions } from '../server/server-options.js'
import type { HubServer } from '../server/server.js'
import type { Connection } from '../connection/connection.js'
import type { Hub } from '../hub/hub.js'
import { UsageError, type CliIo } from './io.js'
import { listenError } from './listen-error.js'
import { createLogger, type Logger } from './log.js'
import type { ServeConfig } from './serve-options.js'

/** The worker's end of its link to the primary: the 5th stdio entry the primary gives it. */
const LINK_FD = 4

/** A worker that dies within this long of its start counts as a crash loop: restarts back off. */
const CRASH_LOOP_MS = 5_000
/** The longest wait between two restarts of a worker in a crash loop. */
const MAX_RESTART_DELAY_MS = 5_000
/** Beyond the drain budget, how long the primary waits for a worker before it kills it. */
const EXIT_MARGIN_MS = 2_000

/** True in a process `ssehub serve --workers N` forked. */
export function isWorkerProcess(): boolean {
  return cluster.isWorker
}

/**
 * The broker of a worker process: the primary's, through the link. (With `--redis`, a worker
 * builds a Redis broker as any node does, and this is not called.)
 */
export function createWorkerBroker(log: Logger): IpcBroker {
  const socket = new Socket({ fd: LINK_FD, readable: true, writable: true })
  return new IpcBroker({
    channel: (onMessage, onClose) =>
      new IpcChannel(socket, onMessage, (error) => {
        onClose(error)
        // Without its link a worker would hold streams that get nothing: it goes, and the
        // primary (if it lives) starts another; the clients resume there.
        if (!shuttingDown) {
          log.log('warn', `ssehub worker: the link to the primary closed; exiting`, {
            event: 'link-closed',
            pid: process.pid,
            cause: error?.message,
          })
          process.exit(1)
        }
      }),
    node: workerNodeId(undefined),
  })
}

/** The message by which the primary asks a worker to drain (see {@link workerSignal}). */
const DRAIN = 'ssehub:drain'

/**
 * A worker's stop signal: its own SIGINT/SIGTERM (`signal`, e.g. Ctrl-C reaching the whole
 * process group) or its primary's drain message, whichever comes first. A message rather than
 * a second signal, which would make the worker exit at once instead of draining.
 */
export function workerSignal(signal: AbortSignal): AbortSignal {
  const drain = new AbortController()
  process.on('message', (message: { type?: string }) => {
    if (message.type === DRAIN) drain.abort()
  })
  return AbortSignal.any([signal, drain.signal])
}

/** The worker drained and closed: it lets go of its channel to the primary, and exits. */
export function workerDone(): void {
  if (process.connected) process.disconnect()
}

/** A worker's node id: `<hostname>:<pid>`, or `<--node-id>/w<worker id>`. */
export function workerNodeId(nodeId: string | undefined): string {
  const id = cluster.worker?.id ?? 0
  return nodeId === undefined ? `${defaultNodeId()}/w${id}` : `${nodeId}/w${id}`
}

/**
 * A worker outlives its primary by no time: when the primary's channel closes (it was killed, or
 * crashed), the worker exits. Its streams are cut; clients reconnect once a hub listens again.
 */
export function exitWithPrimary(log: Logger): void {
  process.once('disconnect', () => {
    if (shuttingDown) return
    log.log('warn', 'ssehub worker: the primary process is gone; exiting', {
      event: 'primary-gone',
      pid: process.pid,
    })
    process.exit(1)
  })
}

let shuttingDown = false

/** Marks the worker's own shutdown (its primary's disconnect is then expected). */
export function workerShuttingDown(): void {
  shuttingDown = true
}

/** The message a worker sends its primary for the hub's `/metrics`, and the answer's. */
const METRICS_ASK = 'ssehub:metrics'
const METRICS_ANSWER = 'ssehub:metrics-answer'
/** How long a worker waits for the hub's metrics (the primary waits 5 s for each worker's). */
const METRICS_TIMEOUT_MS = 6_000

let metricsAsked = 0
const metricsWaits = new Map<number, (answer: { text?: string; error?: string }) => void>()

/**
 * A worker's `/metrics`: the whole hub's, which the primary aggregates with prom-client's cluster
 * aggregation (counters and connections summed over the workers, `ssehub_broker_up` their
 * minimum, the event-loop lag averaged). Per-worker figures are in `/stats`.
 */
export function workerMetricsSource(): () => Promise<string> {
  process.on('message', (message: { type?: string; i?: number; text?: string; error?: string }) => {
    if (message.type !== METRICS_ANSWER || message.i === undefined) return
    metricsWaits.get(message.i)?.(message)
  })
  return () =>
    new Promise((resolve, reject) => {
      const i = ++metricsAsked
      const timer = setTimeout(() => {
        metricsWaits.delete(i)
        reject(new Error(`the primary did not answer for /metrics within ${METRICS_TIMEOUT_MS} ms`))
      }, METRICS_TIMEOUT_MS)
      metricsWaits.set(i, (answer) => {
        clearTimeout(timer)
        metricsWaits.delete(i)
        if (answer.text !== undefined) resolve(answer.text)
        else reject(new Error(answer.error ?? 'no metrics'))
      })
      process.send?.({ type: METRICS_ASK, i })
    })
}

/** Lets the primary read this worker's registry (prom-client's cluster protocol). */
export function shareWorkerMetrics(registry: Registry | null): void {
  if (registry === null) return
  // Constructing one installs prom-client's answering listener in this worker.
  new AggregatorRegistry()
  AggregatorRegistry.setRegistries([registry])
}

/** The primary's side: aggregates every worker's registry for the worker that asks. */
function serveMetrics(): void {
  const aggregator = new AggregatorRegistry()
  cluster.on('message', (worker, message: { type?: string; i?: number }) => {
    if (message.type !== METRICS_ASK) return
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: METRICS_ANSWER, i: message.i, text }),
      (error: Error) => worker.send({ type: METRICS_ANSWER, i: message.i, error: error.message }),
    )
  })
}

/** What {@link runPrimary} needs from serve.ts: the store it would use alone. */
export interface PrimaryParts {
  /** The durable broker of `--store durable`, or `undefined` for the memory store. */
  readonly storeBroker: () => Broker | undefined
  /** The memory broker's options from the command line. */
  readonly memoryOptions: ConstructorParameters<typeof MemoryBroker>[0]
}

/**
 * The primary of `ssehub serve --workers N`: owns the broker, forks and supervises the workers,
 * logs the start line once they all listen, drains them all on SIGTERM/SIGINT.
 */
export async function runPrimary(
  config: ServeConfig,
  argv: readonly string[],
  io: CliIo,
  parts: PrimaryParts,
): Promise<number> {
  const log = createLogger({ format: config.logFormat, write: io.stdout })
  const hubOptions = resolveHubOptions(config.options)
  const { shutdownTimeoutMs } = resolveServerOptions(config.options)
  let host: IpcHost | null = null
  if (config.redisUrl === undefined) {
    let broker: Broker
    try {
      broker = parts.storeBroker() ?? new MemoryBroker(parts.memoryOptions)
    } catch (error) {
      if (error instanceof RangeError || error instanceof TypeError)
        throw new UsageError(error.message)
      throw error
    }
    host = new IpcHost({
      broker,
      // Over every worker: a refusal, or under `--overflow evict` the hub's least recently
      // written connection makes room (each worker's own limits are a subset of these).
      limits: {
        maxConnections: hubOptions.maxConnections,
        maxConnectionsPerClient: hubOptions.maxConnectionsPerClient,
        maxConnectionsPerIp: hubOptions.maxConnectionsPerIp,
        overflow: hubOptions.overflow,
      },
      onError: (error) => log.log('error', error.message, { event: 'error' }),
    })
    try {
      await host.start()
    } catch (error) {
      await host.close().catch(() => {})
      throw new UsageError((error as Error).message)
    }
  }
  const brokerName = host === null ? 'redis' : host.brokerName()
  serveMetrics()
  // The primary accepts every connection and hands it to the worker with the fewest open ones
  // (see Balancer): listening first also reports a port in use before any worker starts.
  const listener = createServer({ pauseOnConnect: true })
  let address: AddressInfo
  try {
    address = await new Promise<AddressInfo>((resolve, reject) => {
      listener.once('error', reject)
      listener.listen(config.port, config.host, () => resolve(listener.address() as AddressInfo))
    })
  } catch (error) {
    await host?.close()
    throw listenError(error, config)
  }
  const balancer = new Balancer()
  listener.on('connection', (socket: Socket) => balancer.dispatch(socket))
  cluster.setupPrimary({
    exec: fileURLToPath(new URL('./main.js', import.meta.url)),
    args: ['serve', ...argv],
    // fd 3: node:cluster's own channel; fd 4: the link to the host (a socketpair).
    stdio: ['ignore', 'inherit', 'inherit', 'ipc', 'pipe'],
  })
  let stopping = false
  const started = new Map<Worker, number>()
  let restartDelayMs = 100
  const fork = (): Worker => {
    const worker = cluster.fork()
    started.set(worker, Date.now())
    balancer.add(worker)
    const link = worker.process.stdio?.[LINK_FD] as Duplex | null | undefined
    // A link the host gave up on (the worker stopped reading): the worker goes, another starts.
    if (host !== null && link !== null && link !== undefined)
      host.attach(link, (_link, error) => {
        // A socket error (ECONNRESET, EPIPE) is the worker's end closing: it is exiting anyway.
        const given = error !== null && (error as NodeJS.ErrnoException).code === undefined
        if (given && !stopping) {
          log.log('warn', `ssehub worker ${worker.id}: ${error.message}; killing it`, {
            event: 'worker-link',
            worker: worker.id,
          })
          worker.process.kill('SIGKILL')
        }
      })
    return worker
  }
  /** Resolves once `count` new workers are ready; rejects with the first one's early exit. */
  const ready = (count: number): Promise<void> =>
    new Promise((resolve, reject) => {
      let left = count
      const onReady = (): void => {
        if (--left > 0) return
        balancer.off('ready', onReady)
        cluster.off('exit', onEarlyExit)
        resolve()
      }
      const onEarlyExit = (_worker: Worker, code: number | null): void => {
        balancer.off('ready', onReady)
        cluster.off('exit', onEarlyExit)
        reject(new WorkerStartError(code ?? 1))
      }
      balancer.on('ready', onReady)
      cluster.on('exit', onEarlyExit)
    })
  try {
    // One worker first: a bad option stops it with one line on stderr, not one per worker.
    const first = ready(1)
    fork()
    await first
    const rest = ready(config.workers - 1)
    for (let i = 1; i < config.workers; i++) fork()
    if (config.workers > 1) await rest
  } catch (error) {
    stopping = true
    listener.close()
    await stopWorkers(0)
    await host?.close()
    // The worker wrote its own one line on stderr (a bad option, a refused host).
    if (error instanceof WorkerStartError) return error.code
    throw error
  }
  const hostText = address.family === 'IPv6' ? `[${address.address}]` : address.address
  // With --tls-cert the workers serve HTTP/2 + HTTP/1.1 over TLS on the connections handed over.
  const tls = config.options.tlsCert !== undefined && config.options.tlsCert !== null
  const url = `${tls ? 'https' : 'http'}://${hostText}:${address.port}`
  log.log('info', `ssehub listening on ${url} (${brokerName} broker, ${config.workers} workers)`, {
    event: 'start',
    pid: process.pid,
    url,
    broker: brokerName,
    workers: config.workers,
  })
  cluster.on('exit', (worker, code, signal) => {
    const since = started.get(worker) ?? 0
    started.delete(worker)
    balancer.remove(worker)
    if (stopping) return
    const fast = Date.now() - since < CRASH_LOOP_MS
    restartDelayMs = fast ? Math.min(restartDelayMs * 2, MAX_RESTART_DELAY_MS) : 100
    log.log(
      'warn',
      `ssehub worker ${worker.id} (pid ${worker.process.pid}) exited (${signal ?? `code ${code}`}); starting another`,
      {
        event: 'worker-exit',
        worker: worker.id,
        pid: worker.process.pid,
        code,
        signal,
      },
    )
    setTimeout(() => {
      if (!stopping) fork()
    }, restartDelayMs).unref()
  })
  if (!io.signal.aborted) {
    await new Promise<void>((resolve) =>
      io.signal.addEventListener('abort', () => resolve(), { once: true }),
    )
  }
  stopping = true
  // No new connection; the workers drain theirs.
  listener.close()
  const begin = Date.now()
  const streams = host?.stats().connections
  log.log(
    'info',
    `ssehub shutting down: draining ${Object.keys(cluster.workers ?? {}).length} workers`,
    {
      event: 'shutdown',
      streams,
    },
  )
  await stopWorkers(shutdownTimeoutMs + EXIT_MARGIN_MS)
  await host?.close()
  const ms = Date.now() - begin
  log.log('info', `ssehub stopped: every worker drained in ${ms} ms`, {
    event: 'stopped',
    streams,
    ms,
  })
  return 0
}

/** The message that carries a connection to a worker, and a worker's notices to the primary. */
const HANDOFF = 'ssehub:connection'
const READY = 'ssehub:ready'
const CLOSED = 'ssehub:closed'

/**
 * Hands each accepted connection to the ready worker with the fewest open connections. Measured
 * against node:cluster's round robin (which gave one worker 2-3 % more of 39,000 streams, past
 * its 20,000-file limit) and the OS's accept spreading (61/39 %): see docs/performance.md. A
 * fresh worker (a restart) takes the new connections until it has caught up with the others.
 */
class Balancer extends EventEmitter {
  private readonly open = new Map<Worker, number>()
  private readonly readyWorkers = new Set<Worker>()

  add(worker: Worker): void {
    this.open.set(worker, 0)
    worker.on('message', (message: { type?: string; n?: number }) => {
      if (message.type === READY) {
        this.readyWorkers.add(worker)
        this.emit('ready', worker)
      } else if (message.type === CLOSED && typeof message.n === 'number') {
        this.open.set(worker, Math.max(0, (this.open.get(worker) ?? 0) - message.n))
      }
    })
  }

  remove(worker: Worker): void {
    this.open.delete(worker)
    this.readyWorkers.delete(worker)
  }

  dispatch(socket: Socket): void {
    let best: Worker | undefined
    let least = Infinity
    for (const worker of this.readyWorkers) {
      const open = this.open.get(worker) ?? 0
      if (open < least && worker.isConnected()) {
        best = worker
        least = open
      }
    }
    if (best === undefined) {
      // No worker is up (all restarting): the client retries.
      socket.destroy()
      return
    }
    const worker = best
    this.open.set(worker, least + 1)
    worker.send(HANDOFF, socket, { keepOpen: false }, (error) => {
      if (error === null) return
      // The worker went while it was being handed over: the client sees a close and retries.
      socket.destroy()
      this.open.set(worker, Math.max(0, (this.open.get(worker) ?? 1) - 1))
    })
  }
}

/**
 * Lets the primary's hub-wide limits evict this worker's connections (`--overflow evict`): the
 * least recently written one, as one process's limits do.
 */
export function evictThrough(broker: Broker | undefined, hub: Hub): void {
  if (!(broker instanceof IpcBroker)) return
  broker.evictWith({
    candidate(clientId, exclude) {
      let victim: Connection | undefined
      for (const connection of hub.connections()) {
        if (connection.id === exclude || connection.state === 'closed') continue
        if (clientId !== undefined && connection.clientId !== clientId) continue
        if (victim === undefined || connection.lastWriteAt < victim.lastWriteAt) victim = connection
      }
      return victim === undefined ? null : { id: victim.id, lastWriteAt: victim.lastWriteAt }
    },
    evict(id) {
      for (const connection of hub.connections())
        if (connection.id === id) connection.end('evicted')
    },
  })
}

/**
 * A worker's start: it serves the connections its primary hands it, reports each one closed
 * (batched per turn), and tells the primary it is ready.
 */
export async function startWorker(hubServer: HubServer, host: string, log: Logger): Promise<void> {
  const take = await hubServer.handoff(host)
  let closed = 0
  const report = (): void => {
    process.send?.({ type: CLOSED, n: closed })
    closed = 0
  }
  process.on('message', (message: unknown, socket?: Socket) => {
    if (message !== HANDOFF || socket === undefined) return
    socket.once('close', () => {
      if (closed++ === 0) setImmediate(report)
    })
    take(socket)
  })
  process.send?.({ type: READY })
  log.log('info', `ssehub worker ${hubServer.hub.node} ready`, {
    event: 'worker-start',
    pid: process.pid,
    node: hubServer.hub.node,
  })
}

/** A worker that exited before it listened: its exit code is the primary's. */
class WorkerStartError extends Error {
  constructor(readonly code: number) {
    super(`a worker exited with code ${code} before it listened`)
  }
}

/**
 * The drain message to every worker (each drains its streams within its shutdown budget), then
 * SIGKILL to any still running after `graceMs`. Resolves once every worker exited.
 */
async function stopWorkers(graceMs: number): Promise<void> {
  const workers = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined)
  const exits = workers.map(
    (worker) =>
      new Promise<void>((resolve) => {
        if (worker.process.exitCode !== null || worker.process.signalCode !== null) resolve()
        else worker.process.once('exit', () => resolve())
      }),
  )
  for (const worker of workers) {
    if (worker.isConnected()) worker.send({ type: DRAIN })
    else worker.process.kill('SIGTERM')
  }
  const timer = setTimeout(() => {
    for (const worker of workers) worker.process.kill('SIGKILL')
  }, graceMs)
  await Promise.all(exits)
  clearTimeout(timer)
}
