/**
 * A private Redis Cluster for tests: `redis-server --cluster-enabled yes` processes on free
 * loopback ports (client and bus port both chosen free), in a temporary folder, joined with
 * `redis-cli --cluster create`, and waited on until every node says `cluster_state:ok` and
 * agrees on who serves every slot. Nothing is persisted: a killed node's data is gone.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Cluster, Redis } from 'ioredis'
import { freePort } from './redis-server.js'
import { waitFor } from './wait.js'

const run = promisify(execFile)

/** One node of a {@link TestRedisCluster}, as `CLUSTER NODES` tells it. */
export interface ClusterNode {
  readonly id: string
  readonly port: number
  readonly role: 'master' | 'replica'
  /** A replica's master's id; `null` for a master. */
  readonly masterId: string | null
  /** Whether the other nodes consider it failed (`fail` flag). */
  readonly failed: boolean
}

/** A running test cluster. */
export interface TestRedisCluster {
  /** Every node's port, masters first (as given to `redis-cli --cluster create`). */
  readonly ports: readonly number[]
  /** The `--redis` value for the whole cluster: `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...`. */
  readonly url: string
  /** A new Cluster client seeded with every node (the caller closes it, or `stop()` does). */
  client(): Cluster
  /** A plain connection to one node (closed by `stop()`). */
  node(port: number): Redis
  /** The nodes as a live node sees them. */
  nodes(): Promise<ClusterNode[]>
  /** The port of the master serving `key`'s slot. */
  masterOf(key: string): Promise<number>
  /** SIGKILL of one node; nothing restarts it. */
  kill(port: number): Promise<void>
  /** SIGSTOP / SIGCONT of one node (a stalled process: its replication stops too). */
  pause(port: number): void
  resume(port: number): void
  /**
   * Promotes the replica on `port` with `CLUSTER FAILOVER TAKEOVER` (no agreement from its
   * dead or paused master needed) and waits until every live node sees it serving its slots.
   */
  promote(port: number): Promise<void>
  stop(): Promise<void>
}

/** Options of {@link startRedisCluster}. */
export interface RedisClusterOptions {
  /** @default 3 */
  readonly masters?: number
  /** Replicas per master. @default 0 */
  readonly replicas?: number
}

async function ensureTools(): Promise<void> {
  for (const tool of ['redis-server', 'redis-cli']) {
    try {
      await run(tool, ['--version'])
    } catch (error) {
      // Fails loudly, never skips: CI (.ci/run) installs both, and a missing one must turn CI red.
      throw new Error(
        `Cannot run ${tool} (${(error as Error).message}); install it: apt-get install redis-server redis-tools`,
        { cause: error },
      )
    }
  }
}

/** Starts a cluster and waits until it serves every slot. */
export async function startRedisCluster(
  options: RedisClusterOptions = {},
): Promise<TestRedisCluster> {
  await ensureTools()
  const masters = options.masters ?? 3
  const replicas = options.replicas ?? 0
  const count = masters * (1 + replicas)
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-cluster-'))
  const ports: number[] = []
  const busPorts: number[] = []
  // Distinct ports: freePort() could hand the same one twice once each probe closed.
  while (ports.length + busPorts.length < count * 2) {
    const port = await freePort()
    if (ports.includes(port) || busPorts.includes(port)) continue
    if (ports.length < count) ports.push(port)
    else busPorts.push(port)
  }
  const children = new Map<number, ChildProcess>()
  const connections: Redis[] = []
  const clients: Cluster[] = []
  ports.forEach((port, i) => {
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--cluster-port',
        String(busPorts[i]),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        `nodes-${port}.conf`,
        // Fast failure detection: a killed master is marked failed within about a second.
        '--cluster-node-timeout',
        '1000',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
      ],
      { stdio: 'ignore' },
    )
    children.set(port, child)
  })
  const node = (port: number): Redis => {
    const connection = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    })
    connection.on('error', () => {})
    connections.push(connection)
    return connection
  }
  const probe = async (port: number, ...args: string[]): Promise<string | null> => {
    const connection = node(port)
    try {
      await connection.connect()
      return String(await connection.call(args[0]!, ...args.slice(1)))
    } catch {
      return null
    } finally {
      connection.disconnect()
      connections.splice(connections.indexOf(connection), 1)
    }
  }
  const alive = (): number[] =>
    ports.filter((port) => {
      const child = children.get(port)!
      return child.exitCode === null && child.signalCode === null
    })
  const nodes = async (): Promise<ClusterNode[]> => {
    for (const port of alive()) {
      const text = await probe(port, 'CLUSTER', 'NODES')
      if (text !== null) return parseNodes(text)
    }
    throw new Error('No cluster node answers CLUSTER NODES')
  }
  // Every live node: cluster_state:ok, and the same master for every slot (no stale view).
  const settled = async (): Promise<boolean> => {
    const views: string[] = []
    for (const port of alive()) {
      const info = await probe(port, 'CLUSTER', 'INFO')
      if (info === null || !info.includes('cluster_state:ok')) return false
      const text = await probe(port, 'CLUSTER', 'NODES')
      if (text === null) return false
      const masterPorts = parseNodes(text)
        .filter((n) => n.role === 'master' && !n.failed && alive().includes(n.port))
        .map((n) => n.port)
        .sort()
      views.push(masterPorts.join(','))
    }
    return views.length > 0 && views.every((view) => view === views[0])
  }
  const stop = async (): Promise<void> => {
    for (const client of clients.splice(0)) client.disconnect()
    for (const connection of connections.splice(0)) connection.disconnect()
    await Promise.all(
      [...children.values()].map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGCONT')
        child.kill('SIGKILL')
        await exited
      }),
    )
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (const port of ports) {
      const child = children.get(port)!
      let failed: Error | null = null
      child.once('error', (error) => (failed = error))
      await waitFor(
        async () => {
          if (failed !== null) throw failed
          return (await probe(port, 'PING')) === 'PONG'
        },
        `redis-server (cluster node) on port ${port}`,
        10_000,
      )
    }
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((port) => `127.0.0.1:${port}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ],
      { timeout: 30_000 },
    )
    await waitFor(settled, 'cluster_state:ok on every node', 20_000)
    if (replicas > 0) {
      // A replica that has not finished its first sync cannot take over: wait for every link.
      await waitFor(
        async () => {
          for (const port of ports) {
            const info = await probe(port, 'INFO', 'replication')
            if (info === null) return false
            if (info.includes('role:slave') && !info.includes('master_link_status:up')) return false
          }
          return true
        },
        'every replica in sync',
        20_000,
      )
    }
  } catch (error) {
    await stop()
    throw error
  }
  return {
    ports,
    url: `redis+cluster://${ports.map((port) => `127.0.0.1:${port}`).join(',')}`,
    client() {
      const client = new Cluster(
        ports.map((port) => ({ host: '127.0.0.1', port })),
        { redisOptions: { maxRetriesPerRequest: 1 } },
      )
      client.on('error', () => {})
      clients.push(client)
      return client
    },
    node(port) {
      const connection = node(port)
      void connection.connect().catch(() => {})
      return connection
    },
    nodes,
    async masterOf(key) {
      const port = alive()[0]!
      const connection = node(port)
      await connection.connect()
      const slot = Number(await connection.cluster('KEYSLOT', key))
      const ranges = await connection.cluster('SLOTS')
      connection.disconnect()
      connections.splice(connections.indexOf(connection), 1)
      const range = ranges.find(([from, to]) => slot >= from && slot <= to)
      if (range === undefined) throw new Error(`No master serves slot ${slot}`)
      return range[2]![1]
    },
    async kill(port) {
      const child = children.get(port)!
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGKILL')
      await exited
    },
    pause(port) {
      children.get(port)!.kill('SIGSTOP')
    },
    resume(port) {
      children.get(port)!.kill('SIGCONT')
    },
    async promote(port) {
      const reply = await probe(port, 'CLUSTER', 'FAILOVER', 'TAKEOVER')
      if (reply !== 'OK') throw new Error(`CLUSTER FAILOVER TAKEOVER on ${port}: ${reply}`)
      await waitFor(
        async () => (await nodes()).some((n) => n.port === port && n.role === 'master'),
        `node ${port} promoted`,
        10_000,
      )
      await waitFor(settled, 'every live node agreeing on the new master', 20_000)
    },
    stop,
  }
}

/** `CLUSTER NODES` text to nodes. */
function parseNodes(text: string): ClusterNode[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id, address, flags, master] = line.split(' ')
      const port = Number(/:(\d+)@/.exec(address!)![1])
      const flagList = flags!.split(',')
      return {
        id: id!,
        port,
        role: flagList.includes('master') ? 'master' : 'replica',
        masterId: master === '-' ? null : master!,
        failed: flagList.includes('fail'),
      } as const
    })
}
