/**
 * The workers' IPC broker against a primary's host in this process, over a real unix-socket pair:
 * the broker contract, and what is its own (publications sent only to a worker that follows one
 * of their keys, serialized once, hub-wide presence and limits).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Broker, Publication, PresenceConnection } from '../../src/broker/broker.js'
import { IpcBroker } from '../../src/broker/ipc.js'
import { IpcChannel } from '../../src/broker/ipc-channel.js'
import { IpcHost, type IpcHostLimits } from '../../src/broker/ipc-host.js'
import { MemoryBroker } from '../../src/broker/memory.js'
import { waitFor } from '../helpers/wait.js'
import { describeBrokerContract, noopSink } from './contract.js'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A connected pair of unix sockets (what a socketpair gives a worker and its primary). */
async function socketPair(): Promise<[Socket, Socket]> {
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-ipc-'))
  const path = join(dir, 's')
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(path, resolve))
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve))
  const client = connect(path)
  const other = await accepted
  server.close()
  rmSync(dir, { recursive: true, force: true })
  return [client, other]
}

/** A host over a memory broker, and a function that makes a worker's broker attached to it. */
async function hub(limits?: IpcHostLimits): Promise<{
  host: IpcHost
  worker: (node: string, everything?: boolean) => Promise<IpcBroker>
}> {
  const host = new IpcHost({ broker: new MemoryBroker({ epoch: 'e' }), ...(limits && { limits }) })
  await host.start()
  cleanups.push(() => host.close())
  return {
    host,
    worker: async (node, everything = false) => {
      const [mine, theirs] = await socketPair()
      host.attach(theirs)
      const broker = new IpcBroker({
        channel: (onMessage, onClose) => new IpcChannel(mine, onMessage, onClose),
        node,
        everything,
      })
      cleanups.push(() => broker.close())
      return broker
    },
  }
}

describeBrokerContract('ipc (a worker of a memory-broker primary)', {
  async make(options) {
    const host = new IpcHost({ broker: new MemoryBroker(options) })
    await host.start()
    cleanups.push(() => host.close())
    const [mine, theirs] = await socketPair()
    host.attach(theirs)
    return new IpcBroker({
      channel: (onMessage, onClose) => new IpcChannel(mine, onMessage, onClose),
      node: 'w1',
      everything: true,
    })
  },
})

function connection(id: string, topics: string[], clientId?: string): PresenceConnection {
  return { id, clientId, topics, connectedAt: Date.now(), remoteAddress: '127.0.0.1' }
}

async function started(broker: Broker): Promise<Publication[]> {
  const delivered: Publication[] = []
  await broker.start({ ...noopSink, publication: (p) => delivered.push(p) })
  return delivered
}

describe('IpcBroker and IpcHost', () => {
  it('sends a publication only to the workers with a connection on one of its keys', async () => {
    const { host, worker } = await hub()
    const w1 = await worker('w1')
    const w2 = await worker('w2')
    const got1 = await started(w1)
    const got2 = await started(w2)
    w1.presence.joined(connection('1', ['a']))
    w2.presence.joined(connection('1', ['b'], 'u'))
    // Joins travel before the publishes: wait until the host has both.
    await waitFor(() => host.stats().connections === 2, 'the joins')
    await w1.publish({ keys: ['a'], data: 'to a' })
    await w1.publish({ keys: ['@c/u'], data: 'to u' })
    await w1.publish({ keys: ['@all'], data: 'to all' })
    await w1.publish({ keys: ['nobody'], data: 'to nobody' })
    await waitFor(() => got1.length === 2 && got2.length === 2, 'the deliveries')
    expect(got1.map((p) => p.data)).toEqual(['to a', 'to all'])
    expect(got2.map((p) => p.data)).toEqual(['to u', 'to all'])
    const links = [...host.links]
    expect(links.map((link) => link.publicationsOut)).toEqual([2, 2])
    // Leaving unsubscribes: a later event for `b` reaches no worker.
    w2.presence.left(connection('1', ['b'], 'u'))
    await waitFor(() => host.stats().connections === 1, 'the leave')
    await w1.publish({ keys: ['b'], data: 'late' })
    expect(links.map((link) => link.publicationsOut)).toEqual([2, 2])
  })

  it('resumes a worker exactly from an id another worker was given', async () => {
    const { worker } = await hub()
    const w1 = await worker('w1')
    const w2 = await worker('w2')
    await started(w1)
    await started(w2)
    const first = await w1.publish({ keys: ['t'], data: '1' })
    await w1.publish({ keys: ['t'], data: '2' })
    await w1.publish({ keys: ['other'], data: 'x' })
    await w1.publish({ keys: ['t'], data: '3' })
    w2.presence.joined(connection('9', ['t']))
    const resume = await w2.resume(['t', '@all'], first.id)
    expect(resume.reset).toBeNull()
    expect(resume.replay.map((item) => [item.id, item.publication.data])).toEqual([
      ['e-2', '2'],
      ['e-4', '3'],
    ])
    expect(resume.cursor.id).toBe('e-4')
  })

  it('counts presence over every worker and refuses a connection past a hub-wide limit', async () => {
    const { worker } = await hub({
      maxConnections: 2,
      maxConnectionsPerClient: null,
      maxConnectionsPerIp: null,
    })
    const w1 = await worker('w1')
    const w2 = await worker('w2')
    await started(w1)
    await started(w2)
    w1.presence.joined(connection('1', ['t']))
    await w1.resume(['t', '@all'], undefined)
    w2.presence.joined(connection('1', ['t']))
    await w2.resume(['t', '@all'], undefined)
    expect(await w1.presence.topic('t')).toEqual({ total: 2, nodes: { w1: 1, w2: 1 } })
    w2.presence.joined(connection('2', ['t']))
    await expect(w2.resume(['t', '@all'], undefined)).rejects.toMatchObject({
      code: 'ERR_SSE_LIMIT_REACHED',
    })
    expect((await w2.presence.connections(10)).map((c) => [c.node, c.id])).toEqual([['w1', '1']])
  })
})
