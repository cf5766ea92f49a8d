import { afterEach, describe, expect, it } from 'vitest'
import type { Broker, BrokerCommand, BrokerSink, Publication } from '../../src/broker/broker.js'
import { waitFor } from '../helpers/wait.js'

/** A sink that ignores everything, for tests that only look at a broker's answers. */
export const noopSink: BrokerSink = {
  publication() {},
  command() {},
  reset() {},
  error() {},
  unavailable() {},
  recovered() {},
}

/** What a contract run needs from an implementation. */
export interface BrokerFactory {
  /** A fresh, started-later broker with this history bound. */
  make(options: { historyMaxEvents?: number }): Promise<Broker>
}

/**
 * The broker contract: every implementation (memory, Redis) must pass it unchanged.
 * Id formats are the broker's own; the suite only treats ids as opaque strings.
 */
export function describeBrokerContract(name: string, factory: BrokerFactory): void {
  describe(`broker contract: ${name}`, () => {
    const opened: Broker[] = []
    afterEach(async () => {
      for (const broker of opened.splice(0)) await broker.close()
    })

    async function start(options: { historyMaxEvents?: number } = {}) {
      const broker = await factory.make(options)
      opened.push(broker)
      const delivered: Publication[] = []
      const commands: BrokerCommand[] = []
      const errors: Error[] = []
      await broker.start({
        publication: (p) => delivered.push(p),
        command: (c) => commands.push(c),
        reset: () => {},
        error: (e) => errors.push(e),
        unavailable: (e) => errors.push(e),
        recovered: () => {},
      })
      const until = async (count: number): Promise<void> => {
        await waitFor(() => delivered.length >= count, `${count} publications delivered`)
      }
      return { broker, delivered, commands, errors, until }
    }

    it('numbers publications with distinct ids and delivers them in order', async () => {
      const { broker, delivered, until } = await start()
      const ids: string[] = []
      for (let i = 0; i < 20; i++)
        ids.push((await broker.publish({ keys: [`t${i % 3}`], data: String(i) })).id)
      await until(20)
      expect(new Set(ids).size).toBe(20)
      expect(delivered.map((p) => p.data)).toEqual(Array.from({ length: 20 }, (_, i) => String(i)))
      expect(delivered.map((p) => p.id)).toEqual(ids)
    })

    it('publishes once per idempotency key, sequential or concurrent retries alike', async () => {
      const { broker, delivered, until } = await start()
      const request = { keys: ['a'], event: 'e', data: 'once', idempotencyKey: 'k-1' }
      const first = await broker.publish(request)
      expect(first.duplicate).toBeUndefined()
      for (let i = 0; i < 4; i++) {
        const again = await broker.publish({ ...request })
        expect(again).toMatchObject({ id: first.id, duplicate: true, data: 'once' })
      }
      // Five at once under a new key: one is published, four are told its id.
      const racing = await Promise.all(
        Array.from({ length: 5 }, () =>
          broker.publish({ keys: ['a'], data: 'race', idempotencyKey: 'k-2' }),
        ),
      )
      expect(new Set(racing.map((p) => p.id)).size).toBe(1)
      expect(racing.filter((p) => p.duplicate !== true)).toHaveLength(1)
      // A marker after both: everything before it was delivered, in order.
      await broker.publish({ keys: ['a'], data: 'marker' })
      await until(3)
      expect(delivered.map((p) => p.data)).toEqual(['once', 'race', 'marker'])
      expect(delivered[1]!.id).toBe(racing[0]!.id)
    })

    it('refuses another event under a used idempotency key, and publishes nothing', async () => {
      const { broker, delivered, until } = await start()
      await broker.publish({ keys: ['a'], data: 'first', idempotencyKey: 'k' })
      for (const changed of [
        { keys: ['a'], data: 'second', idempotencyKey: 'k' },
        { keys: ['b'], data: 'first', idempotencyKey: 'k' },
        { keys: ['a'], data: 'first', event: 'x', idempotencyKey: 'k' },
      ]) {
        await expect(broker.publish(changed)).rejects.toMatchObject({ code: 'ERR_SSE_CONFLICT' })
      }
      await broker.publish({ keys: ['a'], data: 'marker' })
      await until(2)
      expect(delivered.map((p) => p.data)).toEqual(['first', 'marker'])
    })

    it('keeps the fields of a publication', async () => {
      const { broker, delivered, until } = await start()
      const published = await broker.publish({
        keys: ['a', '@c/u'],
        event: 'e',
        data: 'x\ny',
        retry: 5,
      })
      await until(1)
      expect(delivered[0]).toMatchObject({
        id: published.id,
        keys: ['a', '@c/u'],
        event: 'e',
        data: 'x\ny',
        retry: 5,
        close: false,
      })
      expect(typeof delivered[0]!.time).toBe('number')
    })

    it('starts a new connection live: no replay, and a cursor that drops what it already covers', async () => {
      const { broker, delivered, until } = await start()
      await broker.publish({ keys: ['a'], data: 'before' })
      await until(1)
      const resume = await broker.resume(['a', '@all'], undefined)
      expect(resume.replay).toEqual([])
      expect(resume.reset).toBeNull()
      expect(resume.cursor.advance(delivered[0]!)).toBeNull()
      const after = await broker.publish({ keys: ['a'], data: 'after' })
      await until(2)
      expect(resume.cursor.advance(delivered[1]!)).not.toBeNull()
      // The cursor's id names its position: resuming from it replays nothing.
      const again = await broker.resume(['a'], resume.cursor.id)
      expect(again.reset).toBeNull()
      expect(again.replay).toEqual([])
      expect(after.id).toBeTruthy()
    })

    it('replays exactly the missed publications of the given keys, in order', async () => {
      const { broker, until } = await start()
      const first = await broker.publish({ keys: ['a'], data: '1' })
      await broker.publish({ keys: ['b'], data: 'no' })
      await broker.publish({ keys: ['a', 'b'], data: '2' })
      await broker.publish({ keys: ['@c/u'], data: '3' })
      await broker.publish({ keys: ['@c/v'], data: 'no' })
      await broker.publish({ keys: ['@all'], data: '4' })
      await until(6)
      const resume = await broker.resume(['a', '@c/u', '@all'], first.id)
      expect(resume.reset).toBeNull()
      expect(resume.replay.map((item) => item.publication.data)).toEqual(['2', '3', '4'])
      // Replayed ids resume exactly: from the second one, only the rest.
      const fromSecond = await broker.resume(['a', '@c/u', '@all'], resume.replay[1]!.id)
      expect(fromSecond.replay.map((item) => item.publication.data)).toEqual(['4'])
    })

    it('dedupes the overlap between a resume and live delivery', async () => {
      const { broker, delivered, until } = await start()
      const first = await broker.publish({ keys: ['a'], data: '1' })
      await until(1)
      const pending = broker.resume(['a'], first.id)
      await broker.publish({ keys: ['a'], data: '2' })
      await until(2)
      const resume = await pending
      const sent = resume.replay.map((item) => item.publication.data)
      for (const publication of delivered.slice(1)) {
        if (resume.cursor.advance(publication) !== null) sent.push(publication.data)
      }
      expect(sent).toEqual(['2'])
    })

    it('signals a reset for an unknown or malformed id', async () => {
      const { broker } = await start()
      await broker.publish({ keys: ['a'], data: '1' })
      for (const id of ['garbage', '', '~~~', '1-2-3-4']) {
        const resume = await broker.resume(['a'], id)
        expect(resume.reset, id).not.toBeNull()
        expect(resume.reset!.keys).toEqual(['a'])
        expect(resume.replay).toEqual([])
      }
    })

    it('signals a reset (expired) when the history no longer covers the id', async () => {
      // 300 events over a bound of 3: enough for approximate trimming (Redis `MAXLEN ~`) too.
      const { broker } = await start({ historyMaxEvents: 3 })
      const first = await broker.publish({ keys: ['a'], data: '0' })
      for (let i = 1; i < 300; i++) await broker.publish({ keys: ['a'], data: String(i) })
      const resume = await broker.resume(['a'], first.id)
      expect(resume.reset?.reason).toBe('expired')
    })

    it("resumes exactly from a reset's position (the cursor id at the reset), even before any publish", async () => {
      const { broker, until } = await start()
      const empty = await broker.resume(['a'], 'garbage')
      expect(empty.reset).toMatchObject({ reason: 'unknown' })
      const fromEmpty = await broker.resume(['a'], empty.cursor.id)
      expect(fromEmpty.reset).toBeNull()
      expect(fromEmpty.replay).toEqual([])
      await broker.publish({ keys: ['a'], data: 'seen' })
      await until(1)
      const reset = await broker.resume(['a'], 'garbage')
      expect(reset.reset).toMatchObject({ reason: 'unknown' })
      const resetId = reset.cursor.id
      await broker.publish({ keys: ['a'], data: 'after' })
      await broker.publish({ keys: ['b'], data: 'not mine' })
      await until(3)
      const again = await broker.resume(['a'], resetId)
      expect(again.reset).toBeNull()
      expect(again.replay.map((item) => item.publication.data)).toEqual(['after'])
    })

    it('remembers finished topics: the final event for a new connection, ended for one that saw it', async () => {
      const { broker, until } = await start()
      await broker.publish({ keys: ['job'], data: '50' })
      const final = await broker.publish({ keys: ['job'], data: '100', close: true })
      await until(2)
      const fresh = await broker.resume(['job'], undefined)
      expect(fresh.replay.map((item) => item.publication.data)).toEqual(['100'])
      expect(fresh.replay[0]!.publication.close).toBe(true)
      expect([...fresh.ended]).toEqual([])
      const seen = await broker.resume(['job'], final.id)
      expect([...seen.ended]).toEqual(['job'])
      expect(seen.replay).toEqual([])
      // Publishing again reopens the topic.
      await broker.publish({ keys: ['job'], data: 'again' })
      await until(3)
      const reopened = await broker.resume(['job'], final.id)
      expect([...reopened.ended]).toEqual([])
      expect(reopened.replay.map((item) => item.publication.data)).toEqual(['again'])
    })

    it('runs commands on every node (this one included) and reports health', async () => {
      const { broker, commands } = await start()
      await broker.command({ type: 'close-client', clientId: 'u1' })
      await waitFor(() => commands.length > 0, 'the command')
      expect(commands).toEqual([{ type: 'close-client', clientId: 'u1' }])
      expect(broker.health().ok).toBe(true)
    })
  })
}
