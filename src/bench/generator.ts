/**
 * The load generator seen from the main thread: N worker threads holding the streams plus one
 * publisher thread, all in this process (pinned to core 1 when `taskset` exists, away from the
 * server on core 0), so that its own CPU can be read and shown next to the server's.
 */
import { Worker } from 'node:worker_threads'
import { builtFile } from './built.js'
import { BUCKETS, merge } from './histogram.js'
import type {
  Command,
  Dialect,
  OpenResult,
  PublishPlan,
  PublishResult,
  Reply,
  SlowStatus,
  Stats,
  WorkerConfig,
} from './protocol.js'

/** Merged stats of every stream-holding worker. */
export interface MergedStats {
  readonly received: number
  readonly open: number
  readonly closedByServer: number
  readonly histogram: Float64Array
}

/** The request path of a subscription, in a server's dialect. */
export function subscribePath(dialect: Dialect, target: { topic?: string; clientId?: string }) {
  if (dialect === 'nchan')
    return target.clientId !== undefined ? `/sub/c-${target.clientId}` : `/sub/${target.topic!}`
  return target.clientId !== undefined
    ? `/events?clientId=${encodeURIComponent(target.clientId)}`
    : `/events?topic=${encodeURIComponent(target.topic!)}`
}

/**
 * The load generator: streams held by worker threads, publishes sent by one more; every call is a
 * message to the threads and resolves with their reply.
 */
export class LoadGenerator {
  private nextId = 0
  private failure: Error | null = null
  private readonly waiting = new Map<
    number,
    { resolve: (reply: Reply) => void; reject: (error: Error) => void }
  >()

  private constructor(
    private readonly workers: readonly Worker[],
    private readonly publisher: Worker,
  ) {
    for (const worker of [...workers, publisher]) {
      worker.on('message', (message: { id: number; reply?: Reply; error?: string }) => {
        const waiter = this.waiting.get(message.id)
        if (waiter === undefined) return
        this.waiting.delete(message.id)
        if (message.error !== undefined) waiter.reject(new Error(message.error))
        else waiter.resolve(message.reply ?? null)
      })
      worker.on('error', (error) => {
        this.failure = error
        for (const waiter of this.waiting.values()) waiter.reject(error)
        this.waiting.clear()
      })
    }
  }

  /**
   * Starts `threads` stream-holding workers and one publisher worker against host:port;
   * `publishKey` goes with every publish when the server wants one.
   */
  static start(
    host: string,
    port: number,
    threads: number,
    sources: number,
    publishKey: string | null = null,
  ): LoadGenerator {
    if (!/^127\./.test(host)) throw new Error(`loopback only, got ${host}`)
    const sourceAddresses = Array.from({ length: sources }, (_, i) => `127.0.0.${2 + i}`)
    // The built worker, plain JavaScript: no loader in the generator's threads.
    const file = builtFile('worker.js')
    const spawn = (index: number): Worker => {
      const workerData: WorkerConfig = { index, host, port, sourceAddresses, publishKey }
      return new Worker(file, { workerData })
    }
    const workers = Array.from({ length: Math.max(1, threads) }, (_, i) => spawn(i))
    return new LoadGenerator(workers, spawn(threads))
  }

  private call(worker: Worker, command: Command): Promise<Reply> {
    const id = ++this.nextId
    if (this.failure !== null) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject })
      worker.postMessage({ id, command })
    })
  }

  /** Opens streams, spread over the workers; resolves when each answered 200 or failed. */
  async open(paths: readonly string[], timeoutMs = 120_000): Promise<OpenResult> {
    const shares = this.workers.map((): string[] => [])
    paths.forEach((path, i) => shares[i % shares.length]!.push(path))
    const results = (await Promise.all(
      this.workers.map((worker, i) =>
        this.call(worker, { type: 'open', paths: shares[i]!, timeoutMs }),
      ),
    )) as OpenResult[]
    return {
      opened: results.reduce((n, r) => n + r.opened, 0),
      failed: results.reduce((n, r) => n + r.failed, 0),
      errors: results.flatMap((r) => r.errors).slice(0, 5),
    }
  }

  /** Opens one stream that stops reading after its headers. */
  async openSlow(path: string): Promise<OpenResult> {
    return (await this.call(this.workers[0]!, {
      type: 'open-slow',
      path,
      timeoutMs: 10_000,
    })) as OpenResult
  }

  /** Resumes the stalled stream and tells whether the server had closed it. */
  async slowStatus(): Promise<SlowStatus> {
    return (await this.call(this.workers[0]!, {
      type: 'slow-status',
      timeoutMs: 20_000,
    })) as SlowStatus
  }

  async reset(): Promise<void> {
    await Promise.all(this.workers.map((worker) => this.call(worker, { type: 'reset' })))
  }

  async stats(): Promise<MergedStats> {
    const all = (await Promise.all(
      this.workers.map((worker) => this.call(worker, { type: 'stats' })),
    )) as Stats[]
    const histogram = new Float64Array(BUCKETS)
    for (const s of all) merge(histogram, s.histogram)
    return {
      received: all.reduce((n, s) => n + s.received, 0),
      open: all.reduce((n, s) => n + s.open, 0),
      closedByServer: all.reduce((n, s) => n + s.closedByServer, 0),
      histogram,
    }
  }

  async publish(plan: PublishPlan): Promise<PublishResult> {
    return (await this.call(this.publisher, { type: 'publish', plan })) as PublishResult
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.workers.map((worker) => this.call(worker, { type: 'close-all' })))
  }

  async stop(): Promise<void> {
    await Promise.all([...this.workers, this.publisher].map((worker) => worker.terminate()))
  }
}
