import { parseArgs } from 'node:util'
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
  --help              show this help
A flag shows in the process list: on a shared machine, prefer $SSEHUB_PUBLISH_KEY.
`

/**
 * What went wrong under fetch's bare "fetch failed": the cause's code and address
 * (`ECONNREFUSED 127.0.0.1:8080`, `ENOTFOUND hub.example`), each address of a multi-address
 * attempt (an AggregateError), or the cause's message.
 */
export function networkCause(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause
  if (typeof cause !== 'object' || cause === null) return (error as Error).message
  const errors = (cause as { errors?: unknown }).errors
  if (Array.isArray(errors) && errors.length > 0) {
    const each = (errors as unknown[]).map((inner) => networkCause({ cause: inner }))
    return [...new Set(each)].join(', ')
  }
  const code = (cause as { code?: unknown }).code
  const message = (cause as { message?: unknown }).message
  const text = typeof message === 'string' ? message.trim() : ''
  if (typeof code !== 'string' || code === '') return text === '' ? (error as Error).message : text
  // Node writes `connect ECONNREFUSED 127.0.0.1:8080`: from the code on is the useful part.
  const at = text.indexOf(code)
  if (at !== -1) return text.slice(at)
  return text === '' ? code : `${code} ${text}`
}

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
  let url: URL
  try {
    url = new URL('/publish', hubUrl)
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
  let response: Response
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(key === '' ? {} : { authorization: `Bearer ${key}` }),
      },
      body: JSON.stringify(body),
      signal: io.signal,
    })
  } catch (error) {
    if (io.signal.aborted) return 130
    io.stderr(`ssehub publish: cannot reach ${url.href}: ${networkCause(error)}\n`)
    return 1
  }
  const text = await response.text()
  let json: { id?: string; error?: { message?: string } } = {}
  try {
    json = JSON.parse(text) as typeof json
  } catch {
    // Not JSON: reported below with the status.
  }
  if (!response.ok || typeof json.id !== 'string') {
    let detail = json.error?.message ?? text.slice(0, 200).replace(/\s+/g, ' ')
    if (response.status === 401) {
      // The hub's message says which header to send; say how this command sends it.
      detail +=
        key === ''
          ? ' Pass the key with --key <key> or $SSEHUB_PUBLISH_KEY.'
          : ` The key given by ${keySource} was refused; check it, or pass another with --key <key>.`
    }
    io.stderr(`ssehub publish: hub answered ${response.status}: ${detail}\n`)
    return 1
  }
  io.stdout(`${json.id}\n`)
  return 0
}
