/**
 * What every Node server of the capacity bench shares: listen on a loopback port, print
 * `listening <port>` on stdout, and answer the bench's IPC questions (event-loop lag).
 * Memory and CPU are read by the bench from /proc, the same way for Node and nginx.
 */
import { Server as HttpServer } from 'node:http'
import type { Server } from 'node:net'
import { monitorEventLoopDelay } from 'node:perf_hooks'

/** The parsed body of `POST /publish`, the same JSON for ssehub and its Node peers. */
export interface PublishBody {
  readonly topic?: string | readonly string[]
  readonly clientId?: string
  readonly data: unknown
}

/** Reads a small request body (bounded: 1 MiB). */
export function readJson(req: NodeJS.ReadableStream): Promise<PublishBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > 1_048_576) reject(new Error('body too large'))
      else chunks.push(chunk)
    })
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as PublishBody)
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)))
      }
    })
    req.on('error', reject)
  })
}

/** Listens on 127.0.0.1:`BENCH_PORT` (0: a free port) and serves the bench's IPC channel. */
export function serve(server: Server): void {
  // 10 ms, not 1: a 1 ms timer wakes the server ~1,000 times a second (strace: ~1,400 epoll_pwait/s at
  // 10 publishes/s), a cost nginx does not pay; the recorded delays keep their precision.
  const lag = monitorEventLoopDelay({ resolution: 10 })
  lag.enable()
  process.on('message', (message: unknown) => {
    if (message !== 'lag') return
    const ms = (ns: number): number => Math.round(ns / 1e4) / 100
    process.send?.({
      lagP50Ms: ms(lag.percentile(50)),
      lagP99Ms: ms(lag.percentile(99)),
      lagMaxMs: ms(lag.max),
    })
    lag.reset()
  })
  // The bench holds thousands of long-lived streams: no Node timeouts on them.
  if (server instanceof HttpServer) {
    server.requestTimeout = 0
    server.headersTimeout = 0
    server.keepAliveTimeout = 60_000
    server.maxRequestsPerSocket = 0
  }
  server.listen(Number(process.env.BENCH_PORT ?? 0), '127.0.0.1', () => {
    const address = server.address()
    const port = typeof address === 'object' && address !== null ? address.port : 0
    process.stdout.write(`listening ${port}\n`)
  })
  process.on('SIGTERM', () => process.exit(0))
  // Never outlive the bench (a killed bench closes the IPC channel).
  process.on('disconnect', () => process.exit(0))
}
