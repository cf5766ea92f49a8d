/**
 * One round of the durability proof: `ssehub serve` on a fixed port, subscribers that reconnect
 * with `Last-Event-ID` (our client), a publisher at a steady rate, `kill -9` of the hub at a
 * chosen moment, a restart with the same arguments, then a check of what each subscriber got.
 * Shared by test/cli/durable-restart.test.ts (a few rounds) and bench/durable/crash.ts (20).
 */
import { connect, type Connection } from '../../src/client/index.js'
import { startCliHub, type CliProcess } from './cli.js'
import { freePort } from './redis-server.js'
import { waitFor } from './wait.js'

/** What one round found. */
export interface RoundResult {
  /** Publishes answered 200. */
  readonly acknowledged: number
  /** Publishes that failed (the hub was down, or the answer was lost in the kill). */
  readonly failed: number
  /** Events the log holds (what the first subscriber got). */
  readonly delivered: number
  /** Subscribers that got a `ssehub.reset` event. */
  readonly resets: number
  /** Every problem found (empty: every acknowledged event reached every subscriber once, in order). */
  readonly problems: string[]
  /** ms from the kill to the restarted hub listening. */
  readonly restartMs: number
}

/** Options of {@link killRestartRound}. */
export interface RoundOptions {
  /** `ssehub serve` arguments besides the port (e.g. `--data-dir`, `--store memory`). */
  readonly args: readonly string[]
  readonly subscribers: number
  readonly publishesPerSecond: number
  /** Acknowledged publishes before the kill (choose it at random for a random moment). */
  readonly killAfterAcks: number
  /** Acknowledged publishes after the restart before the publisher stops. */
  readonly afterAcks: number
}

interface Subscriber {
  readonly connection: Connection
  readonly got: { id: string; data: string }[]
  resets: number
  failure: Error | null
}

/** Seq of an `<epoch>-<seq>` id (the durable and memory brokers' form). */
const seqOf = (id: string): number => Number(id.slice(id.lastIndexOf('-') + 1))

/** Runs one round; never throws for what it finds (see {@link RoundResult.problems}). */
export async function killRestartRound(options: RoundOptions): Promise<RoundResult> {
  const port = await freePort()
  const args = ['--port', String(port), '--retry-ms', '50', ...options.args]
  const started = await startCliHub(args)
  let hub: CliProcess = started.cli
  const { url } = started
  const subscribers: Subscriber[] = []
  try {
    for (let i = 0; i < options.subscribers; i++) {
      const subscriber: Subscriber = {
        got: [],
        resets: 0,
        failure: null,
        connection: undefined as unknown as Connection,
      }
      ;(subscriber as { connection: Connection }).connection = connect(
        {
          url: `${url}/events?topic=proof`,
          reconnect: { retryMs: 50, maxRetryMs: 200, jitter: false },
        },
        {
          onEvent: (event) => {
            if (event.type === 'ssehub.reset') subscriber.resets++
            else subscriber.got.push({ id: event.lastEventId, data: event.data })
          },
          onFailure: (error) => (subscriber.failure = error),
        },
      )
      subscribers.push(subscriber)
    }
    await waitFor(
      async () =>
        ((await (await fetch(`${url}/topics/proof`)).json()) as { subscribers: number })
          .subscribers === options.subscribers,
      'every subscriber to connect',
      10_000,
    )

    const acknowledged = new Set<string>()
    let failed = 0
    let counter = 0
    let stop = false
    const inFlight = new Set<Promise<void>>()
    const publishOne = (): void => {
      const data = String(++counter)
      const done: Promise<void> = fetch(`${url}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'proof', data }),
      })
        .then(async (response) => {
          await response.arrayBuffer()
          if (response.status === 200) acknowledged.add(data)
          else failed++
        })
        .catch(() => void failed++)
        .finally(() => inFlight.delete(done))
      inFlight.add(done)
    }
    // A steady rate, across the kill and the restart: every 5 ms, the publishes due by now.
    const publisher = (async () => {
      const start = Date.now()
      let sent = 0
      while (!stop) {
        const due = Math.floor(((Date.now() - start) * options.publishesPerSecond) / 1000)
        for (; sent < due; sent++) publishOne()
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    })()

    await waitFor(
      () => acknowledged.size >= options.killAfterAcks,
      'publishes before the kill',
      20_000,
    )
    hub.child.kill('SIGKILL')
    const killedAt = Date.now()
    await hub.exited
    hub = (await startCliHub(args)).cli
    const restartMs = Date.now() - killedAt
    const target = acknowledged.size + options.afterAcks
    await waitFor(() => acknowledged.size >= target, 'publishes after the restart', 20_000)
    stop = true
    await publisher
    await Promise.all([...inFlight])

    const problems: string[] = []
    // Every acknowledged event, in every subscriber, once, in the broker's order.
    const last = Math.max(0, ...[...acknowledged].map(Number))
    await waitFor(
      () =>
        subscribers.every(
          (s) =>
            s.failure !== null ||
            s.resets > 0 ||
            s.got.some((event) => event.data === String(last)) ||
            last === 0,
        ),
      'every subscriber to catch up',
      15_000,
    ).catch((error: Error) => problems.push(error.message))
    const reference = subscribers[0]!.got
    for (const [index, subscriber] of subscribers.entries()) {
      const name = `subscriber ${index}`
      if (subscriber.failure !== null)
        problems.push(`${name} failed: ${subscriber.failure.message}`)
      if (subscriber.resets > 0) problems.push(`${name} got ${subscriber.resets} reset(s)`)
      const seen = new Set<string>()
      let previous = 0
      for (const event of subscriber.got) {
        if (seen.has(event.data)) problems.push(`${name} got ${event.data} twice`)
        seen.add(event.data)
        const seq = seqOf(event.id)
        if (!(seq > previous)) problems.push(`${name}: id ${event.id} after seq ${previous}`)
        previous = seq
      }
      for (const data of acknowledged)
        if (!seen.has(data)) problems.push(`${name} never got acknowledged event ${data}`)
      if (
        subscriber.got.length !== reference.length ||
        subscriber.got.some((event, i) => event.id !== reference[i]!.id)
      ) {
        problems.push(`${name} got another sequence than subscriber 0`)
      }
    }
    return {
      acknowledged: acknowledged.size,
      failed,
      delivered: reference.length,
      resets: subscribers.filter((s) => s.resets > 0).length,
      problems: [...new Set(problems)].slice(0, 20),
      restartMs,
    }
  } finally {
    for (const subscriber of subscribers) subscriber.connection.close()
    if (hub.child.exitCode === null && hub.child.signalCode === null) {
      hub.child.kill('SIGKILL')
      await hub.exited
    }
  }
}
