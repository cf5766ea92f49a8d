/**
 * A Redis Cluster master fails and its replica is promoted (`CLUSTER FAILOVER TAKEOVER`), with
 * two broker nodes tailing the log. Replication is asynchronous: in the second case the replica
 * is stalled (SIGSTOP) while the last events are published, so the promoted replica lacks
 * entries that were acknowledged and delivered. Nothing may be silent: each node's connections
 * get every event of the surviving log, or a reset before the point where what they got and the
 * log part; a client holding the id of a lost entry gets a reset on resume, before and after new
 * events overtake it, never a replay that skips.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { BrokerSink, Publication } from '../../src/broker/broker.js'
import { RedisBroker } from '../../src/broker/redis.js'
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.js'
import { waitFor } from '../helpers/wait.js'
import { noopSink } from '../broker/contract.js'

interface Node {
  readonly broker: RedisBroker
  /** What the sink heard, in order: `data` of publications, `reset:<reason>` for resets. */
  readonly heard: string[]
  readonly resetIds: string[]
  readonly publications: Publication[]
}

// One cluster for the file: each test fails over another master (one whose replica is alive).
let cluster: TestRedisCluster
const brokers: RedisBroker[] = []
const usedMasters = new Set<number>()

beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3, replicas: 1 })
}, 30_000)
afterEach(async () => {
  for (const broker of brokers.splice(0)) await broker.close()
})
afterAll(async () => {
  await cluster?.stop()
})

/** A key prefix whose slot is on a master with a replica (not one a test promoted). */
async function freshPrefix(): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const prefix = `fo${i}:{h${i}}:`
    const master = await cluster.masterOf(`${prefix}log`)
    const nodes = await cluster.nodes()
    const id = nodes.find((n) => n.port === master)!.id
    if (!usedMasters.has(master) && nodes.some((n) => n.masterId === id && !n.failed)) {
      usedMasters.add(master)
      return prefix
    }
  }
  throw new Error('No master left to fail over')
}

async function startNode(c: TestRedisCluster, prefix: string): Promise<Node> {
  const broker = new RedisBroker({ client: c.client(), prefix, blockMs: 200 })
  brokers.push(broker)
  const node: Node = { broker, heard: [], resetIds: [], publications: [] }
  const sink: BrokerSink = {
    ...noopSink,
    publication: (p) => {
      node.heard.push(p.data)
      node.publications.push(p)
    },
    reset: (reason, id) => {
      node.heard.push(`reset:${reason}`)
      node.resetIds.push(id)
    },
  }
  await broker.start(sink)
  return node
}

/** Publishes `data` through `node`, retrying while the cluster fails over (a 503 in the server). */
async function publish(node: Node, data: string): Promise<Publication> {
  let last: unknown
  for (let attempt = 0; attempt < 200; attempt++) {
    try {
      return await node.broker.publish({ keys: ['t'], data })
    } catch (error) {
      last = error
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  throw last
}

/**
 * Kills the master serving the broker's slot and promotes its replica; `lag` runs while the
 * replica gets nothing from the master (what it publishes is lost in the failover).
 */
async function killMasterAndPromote(
  c: TestRedisCluster,
  prefix: string,
  lag: () => Promise<void>,
): Promise<void> {
  const master = await c.masterOf(`${prefix}log`)
  const nodes = await c.nodes()
  const masterId = nodes.find((n) => n.port === master)!.id
  const replica = nodes.find((n) => n.masterId === masterId)!.port
  // A stopped replica would still find everything sent before in its socket buffer: the link is
  // cut too, so what `lag` publishes reaches the master only (its backlog dies with it).
  c.pause(replica)
  const connection = c.node(master)
  await connection.call('CLIENT', 'KILL', 'TYPE', 'replica')
  await lag()
  await c.kill(master)
  c.resume(replica)
  await c.promote(replica)
}

describe('a Redis Cluster failover to a replica', () => {
  it('with the replica in sync: every node delivers every event once, in order, and no reset', async () => {
    const prefix = await freshPrefix()
    const [a, b] = [await startNode(cluster, prefix), await startNode(cluster, prefix)]
    const before = [] as string[]
    for (let i = 0; i < 20; i++) before.push((await publish(a, `e${i}`)).id)
    // Replicated before the failover (WAIT on the master): nothing acknowledged is lost.
    const master = await cluster.masterOf(`${prefix}log`)
    expect(await cluster.node(master).call('WAIT', '1', '2000')).toBe(1)
    await killMasterAndPromote(cluster, prefix, async () => {})
    for (let i = 20; i < 40; i++) await publish(i % 2 === 0 ? a : b, `e${i}`)
    const all = Array.from({ length: 40 }, (_, i) => `e${i}`)
    for (const node of [a, b]) {
      await waitFor(() => node.heard.length >= 40, 'every event on each node', 15_000)
      expect(node.heard).toEqual(all)
    }
    // A client resumes on the promoted replica exactly where it was.
    const resume = await b.broker.resume(['t'], before[9])
    expect(resume.reset).toBeNull()
    expect(resume.replay.map((item) => item.publication.data)).toEqual(all.slice(10))
  }, 40_000)

  it('with the replica behind: a reset before the gap on the node that delivered lost events; a lost id resumes with a reset, before and after newer events overtake it', async () => {
    const prefix = await freshPrefix()
    const [a, b] = [await startNode(cluster, prefix), await startNode(cluster, prefix)]
    for (let i = 0; i < 10; i++) await publish(a, `e${i}`)
    await waitFor(() => a.heard.length === 10 && b.heard.length === 10, 'the first ten')
    // The first ten reached the replica (WAIT): only the five below are lost. Without it, a loaded
    // machine may cut the link before the replica has them all, and e4 is lost too.
    const master = await cluster.masterOf(`${prefix}log`)
    expect(await cluster.node(master).call('WAIT', '1', '2000')).toBe(1)
    const lost: Publication[] = []
    await killMasterAndPromote(cluster, prefix, async () => {
      // The replica is stopped: these are acknowledged by the master only.
      for (let i = 10; i < 15; i++) lost.push(await publish(a, `lost${i}`))
      await waitFor(() => a.heard.length === 15 && b.heard.length === 15, 'the lost five read')
    })
    // The log now ends at e9. A client that got lost12 is ahead of it.
    const ahead = await b.broker.resume(['t'], lost[2]!.id)
    expect(ahead.reset?.reason).toBe('unknown')
    expect(ahead.replay).toEqual([])
    // New events: their ids overtake the lost ones (Redis ids follow the clock).
    const after: Publication[] = []
    for (let i = 15; i < 20; i++) after.push(await publish(b, `e${i}`))
    expect(after[0]!.id > lost[4]!.id).toBe(true)
    for (const node of [a, b]) {
      await waitFor(() => node.heard.includes('e19'), 'the new events on each node', 15_000)
      // Every event the node delivered, then a reset before the new ones: the lost five are not
      // in the log, so what the node's connections hold and the log part at e9.
      expect(node.heard).toEqual([
        ...Array.from({ length: 10 }, (_, i) => `e${i}`),
        ...lost.map((p) => p.data),
        'reset:unknown',
        ...after.map((p) => p.data),
      ])
      // The reset's id is right before the first new entry: a resume from it replays them.
      const fromReset = await node.broker.resume(['t'], node.resetIds[0])
      expect(fromReset.reset).toBeNull()
      expect(fromReset.replay.map((item) => item.publication.data)).toEqual(
        after.map((p) => p.data),
      )
    }
    // The lost ids, now behind the newest entry: still a reset, never a replay that skips.
    for (const publication of lost) {
      const resume = await a.broker.resume(['t'], publication.id)
      expect(resume.reset?.reason, publication.data).toBe('unknown')
      expect(resume.replay).toEqual([])
    }
    // The new events have ids of their own: none reuses a lost id.
    const ids = new Set(lost.map((p) => p.id))
    expect(after.filter((p) => ids.has(p.id))).toEqual([])
    // And ids that survived still resume exactly.
    const exact = await a.broker.resume(['t'], a.publications[4]!.id)
    expect(exact.reset).toBeNull()
    expect(exact.replay.map((item) => item.publication.data)).toEqual([
      'e5',
      'e6',
      'e7',
      'e8',
      'e9',
      ...after.map((p) => p.data),
    ])
  }, 40_000)
})
