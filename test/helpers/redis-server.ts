import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { waitFor } from './wait.js'

/** A private `redis-server` on a free loopback port, without persistence unless asked (`aof`). */
export interface TestRedis {
  readonly port: number
  readonly url: string
  /** A new client (the caller closes it). */
  client(): Redis
  /**
   * Kills the server (SIGKILL) and starts it again on the same port: empty, or, with `aof`, with
   * what its append-only file kept.
   */
  restart(): Promise<void>
  /** Kills the server (SIGKILL): Redis is away until {@link TestRedis.up}. */
  down(): Promise<void>
  /** Starts a fresh, empty server on the same port after {@link TestRedis.down}. */
  up(): Promise<void>
  stop(): Promise<void>
}

/** A free TCP port on 127.0.0.1 (listen on 0, close). */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

function spawnRedis(port: number, aofDir: string | null): ChildProcess {
  // Without a folder: no persistence (a restart starts empty). With one: an append-only file
  // fsynced at every write, so that a SIGKILL loses nothing acknowledged.
  const persistence =
    aofDir === null
      ? ['--save', '', '--appendonly', 'no']
      : ['--save', '', '--dir', aofDir, '--appendonly', 'yes', '--appendfsync', 'always']
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', ...persistence], {
    stdio: 'ignore',
  })
}

async function ping(port: number): Promise<boolean> {
  const probe = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  })
  probe.on('error', () => {})
  try {
    await probe.connect()
    return (await probe.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    probe.disconnect()
  }
}

/**
 * Starts `redis-server` (with `aof`: persistent, see {@link TestRedis.restart}). Fails loudly (never skips) when it cannot: CI installs it
 * (`apt-get install redis-server`), and a missing server must turn CI red.
 */
export async function startRedis(options: { readonly aof?: boolean } = {}): Promise<TestRedis> {
  const port = await freePort()
  const aofDir = options.aof === true ? mkdtempSync(join(tmpdir(), 'ssehub-redis-')) : null
  let child = spawnRedis(port, aofDir)
  const started = async (proc: ChildProcess): Promise<void> => {
    let failed: Error | null = null
    proc.once('error', (error) => (failed = error))
    await waitFor(
      async () => {
        if (failed !== null) {
          throw new Error(
            `Cannot start redis-server (${failed.message}); install it: apt-get install redis-server`,
          )
        }
        return ping(port)
      },
      `redis-server on port ${port}`,
      10_000,
    )
  }
  await started(child)
  const clients: Redis[] = []
  const kill = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }
  const up = async (): Promise<void> => {
    child = spawnRedis(port, aofDir)
    await started(child)
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    client() {
      const client = new Redis({ port, host: '127.0.0.1' })
      client.on('error', () => {})
      clients.push(client)
      return client
    },
    async restart() {
      await kill()
      await up()
    },
    down: kill,
    up,
    async stop() {
      for (const client of clients.splice(0)) client.disconnect()
      await kill()
      if (aofDir !== null) rmSync(aofDir, { recursive: true, force: true })
    },
  }
}
