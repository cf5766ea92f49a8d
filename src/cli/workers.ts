/**
 * `ssehub serve --workers N`: N worker processes serve HTTP on the one port (node:cluster: the
 * primary accepts and hands each connection to the next worker, round robin), and they are one
 * hub. Without `--redis` the primary owns the hub's broker (memory or durable) through an
 * {@link IpcHost}, and every worker reaches it through an {@link IpcBroker}: one sequencer, so
 * ids, history, targets, finished topics, client commands, presence and the connection limits
 * are hub-wide. With `--redis`, each worker is a Redis node and the primary only supervises.
 *
 * Faults: a worker that dies is forked again (its clients reconnect to the others and resume
 * exactly); a worker whose primary is gone exits at once (no orphans); SIGTERM/SIGINT on the
 * primary drains every worker within `--shutdown-timeout` and then stops.
 */
import cluster, { type Address, type Worker } from 'node:cluster'
import { Socket, type AddressInfo } from 'node:net'
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
import { UsageError, type CliIo } from './io.js'
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
export function createWorkerBroker(log: Logger): Broker {
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
      // Under `--overflow evict` a worker evicts among its own connections; the host enforces
      // the limits that refuse (the per-IP limit always does).
      limits: {
        maxConnections: hubOptions.overflow === 'reject' ? hubOptions.maxConnections : null,
        maxConnectionsPerClient:
          hubOptions.overflow === 'reject' ? hubOptions.maxConnectionsPerClient : null,
        maxConnectionsPerIp: hubOptions.maxConnectionsPerIp,
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
    const link = worker.process.stdio?.[LINK_FD] as Duplex | null | undefined
    // A link the host gave up on (the worker stopped reading): the worker goes, another starts.
    if (host !== null && link !== null && link !== undefined)
      host.attach(link, (_link, error) => {
        if (error !== null && !stopping) {
          log.log('warn', `ssehub worker ${worker.id}: ${error.message}; killing it`, {
            event: 'worker-link',
            worker: worker.id,
          })
          worker.process.kill('SIGKILL')
        }
      })
    return worker
  }
  // Start: every worker listens, or the first one that fails stops the start.
  const listening = new Promise<AddressInfo>((resolve, reject) => {
    let count = 0
    const onListening = (_worker: Worker, address: Address): void => {
      if (++count < config.workers) return
      cluster.off('listening', onListening)
      cluster.off('exit', onEarlyExit)
      resolve({
        address: address.address ?? config.host,
        family: address.addressType === 6 ? 'IPv6' : 'IPv4',
        port: address.port,
      })
    }
    const onEarlyExit = (_worker: Worker, code: number | null): void => {
      cluster.off('listening', onListening)
      cluster.off('exit', onEarlyExit)
      reject(new WorkerStartError(code ?? 1))
    }
    cluster.on('listening', onListening)
    cluster.on('exit', onEarlyExit)
  })
  for (let i = 0; i < config.workers; i++) fork()
  let address: AddressInfo
  try {
    address = await listening
  } catch (error) {
    stopping = true
    await stopWorkers(0)
    await host?.close()
    // The worker wrote its own one line on stderr (a bad option, a port in use).
    if (error instanceof WorkerStartError) return error.code
    throw error
  }
  const hostText = address.family === 'IPv6' ? `[${config.host}]` : config.host
  const url = `http://${hostText}:${address.port}`
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
