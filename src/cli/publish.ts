import { parseArgs } from 'node:util'
import { PUBLISH_DEFAULTS, PublishError, publish, type Published } from '../client/publisher.js'
export { networkCause } from '../client/publisher.js'
import { UsageError, type CliIo } from './io.js'

/** `ssehub publish --help`. */
export const publishHelp = `Usage: ssehub publish (--topic T... | --client C | --all) [options] DATA

Publishes DATA to a running hub and prints the event id.

Options:
  --topic <name>      a topic (repeat for several)
  --client <id>       every connection of a client id
  --all               every connection
  --event <name>      event type name
  --retry <ms>        reconnection delay for clients
  --close             the topic's last event: subscribers' streams end after it
  --json              DATA is a JSON value (sent JSON-encoded) instead of a string
  --hub <url>         hub URL [default: $SSEHUB_URL or http://localhost:8080]
  --key <key>         the publish key (or a token that may publish), sent as
                      Authorization: Bearer [default: $SSEHUB_PUBLISH_KEY]
  --attempts <n>      attempts in all: a timeout, a lost connection, 408, 429 or
                      5xx is retried with backoff [default: 5]
  --idempotency-key <key>
                      the event's key [default: a random UUID]: every attempt
                      sends it, so the hub publishes the event once
  --help              show this help
A flag shows in the process list: on a shared machine, prefer $SSEHUB_PUBLISH_KEY.
`

/**
 * `ssehub publish`: one POST /publish, with the key of `--key` or `$SSEHUB_PUBLISH_KEY` (the flag
 * wins) as `Authorization: Bearer`. Returns 0 and prints the id on success; prints one line on
 * stderr and returns 1 when the hub refuses (its error message; a 401 says how to pass the key) or
 * cannot be reached (the network cause, e.g. `ECONNREFUSED 127.0.0.1:8080`); 130 when interrupted.
 */
export async function runPublish(argv: string[], io: CliIo): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        topic: { type: 'string', multiple: true },
        client: { type: 'string' },
        all: { type: 'boolean' },
        event: { type: 'string' },
        retry: { type: 'string' },
        close: { type: 'boolean' },
        json: { type: 'boolean' },
        hub: { type: 'string' },
        key: { type: 'string' },
        attempts: { type: 'string' },
        'idempotency-key': { type: 'string' },
        help: { type: 'boolean' },
      },
    })
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
  const { values, positionals } = parsed
  if (values.help === true) {
    io.stdout(publishHelp)
    return 0
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      `publish takes exactly one DATA argument, got ${positionals.length}; see ssehub publish --help`,
    )
  }
  if (values.topic === undefined && values.client === undefined && values.all !== true) {
    throw new UsageError('publish needs a target: --topic T, --client C or --all')
  }
  if (values.retry !== undefined && !/^\d{1,15}$/.test(values.retry)) {
    throw new UsageError(
      `--retry expects a non-negative integer, got ${JSON.stringify(values.retry)}`,
    )
  }
  let data: unknown = positionals[0]!
  if (values.json === true) {
    try {
      data = JSON.parse(positionals[0]!)
    } catch {
      throw new UsageError('--json: DATA is not valid JSON')
    }
  }
  const hubUrl = values.hub ?? io.env.SSEHUB_URL ?? 'http://localhost:8080'
  try {
    new URL('/publish', hubUrl)
  } catch {
    throw new UsageError(`--hub: ${JSON.stringify(hubUrl)} is not a URL`)
  }
  const body = {
    ...(values.topic === undefined
      ? {}
      : { topic: values.topic.length === 1 ? values.topic[0] : values.topic }),
    ...(values.client === undefined ? {} : { clientId: values.client }),
    ...(values.all === true ? { all: true } : {}),
    ...(values.event === undefined ? {} : { event: values.event }),
    ...(values.retry === undefined ? {} : { retry: Number(values.retry) }),
    ...(values.close === true ? { close: true } : {}),
    data,
  }
  // The flag wins over the variable; an empty value sends no key.
  const keySource = values.key !== undefined ? '--key' : '$SSEHUB_PUBLISH_KEY'
  const key = values.key ?? io.env.SSEHUB_PUBLISH_KEY ?? ''
  let attempts: number = PUBLISH_DEFAULTS.attempts
  if (values.attempts !== undefined) {
    if (!/^[1-9]\d{0,2}$/.test(values.attempts))
      throw new UsageError(`--attempts expects 1 to 999, got ${JSON.stringify(values.attempts)}`)
    attempts = Number(values.attempts)
  }
  let answer: Published
  try {
    // One idempotency key for every attempt: a retry of an event that landed is not published twice.
    answer = await publish(body, {
      hub: hubUrl,
      key,
      attempts,
      ...(values['idempotency-key'] === undefined
        ? {}
        : { idempotencyKey: values['idempotency-key'] }),
      signal: io.signal,
      onRetry: ({ attempt, delayMs, reason }) =>
        io.stderr(
          `ssehub publish: attempt ${attempt} of ${attempts} failed (${reason}); retrying in ${delayMs} ms with the same idempotency key\n`,
        ),
    })
  } catch (error) {
    if (io.signal.aborted) return 130
    if (!(error instanceof PublishError)) throw error
    let detail = error.message
    if (error.status === 401) {
      // The hub's message says which header to send; say how this command sends it.
      detail +=
        key === ''
          ? ' Pass the key with --key <key> or $SSEHUB_PUBLISH_KEY.'
          : ` The key given by ${keySource} was refused; check it, or pass another with --key <key>.`
    }
    io.stderr(`ssehub publish: ${detail}\n`)
    return 1
  }
  io.stdout(`${answer.id}${answer.duplicate === true ? ' (already published)' : ''}\n`)
  return 0
}
