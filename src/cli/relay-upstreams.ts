/**
 * `--relay-upstream NAME=URL[,key-env=VAR][,model=MODEL]` (repeatable; several in one value or in
 * `SSEHUB_RELAY_UPSTREAM` are separated by `;`): the upstreams `POST /relays` may name. The API
 * key is read from the environment variable the option names, so it never sits on a command line
 * (where `ps` shows it); a variable that is not set is an error, not an upstream without a key.
 */
import { didYouMean } from '../closest.js'
import type { HttpRelayUpstream } from '../relay/relays.js'
import { UsageError } from './io.js'

const SETTINGS = ['key-env', 'model'] as const

/**
 * Parses one value of `--relay-upstream` into `into` (by name).
 * @throws {UsageError} for a malformed entry, an unknown setting (naming the closest), a name
 * given twice, or a `key-env` variable that is not set.
 */
export function parseRelayUpstreams(
  raw: string,
  source: string,
  env: Readonly<Record<string, string | undefined>>,
  into: Record<string, HttpRelayUpstream>,
): void {
  for (const entry of raw.split(';').map((part) => part.trim())) {
    if (entry === '') continue
    const match = /^([A-Za-z0-9_.-]{1,64})=(https?:\/\/[^\s,]+)((?:,[^,]*)*)$/.exec(entry)
    if (match === null) {
      throw new UsageError(
        `${source} expects NAME=URL[,key-env=VAR][,model=MODEL] (e.g. openai=https://api.openai.com/v1,key-env=OPENAI_API_KEY), got ${JSON.stringify(entry)}`,
      )
    }
    const [, name, url, rest] = match as unknown as [string, string, string, string]
    if (name in into) throw new UsageError(`${source}: the upstream ${name} is given twice`)
    let apiKey: string | null = null
    let model: string | null = null
    for (const setting of rest.split(',').slice(1)) {
      const eq = setting.indexOf('=')
      const key = eq === -1 ? setting : setting.slice(0, eq)
      const value = eq === -1 ? '' : setting.slice(eq + 1)
      if (key === 'key-env') {
        const found = env[value]
        if (value === '' || found === undefined || found === '')
          throw new UsageError(
            `${source}: the upstream ${name} takes its API key from $${value}, which is not set`,
          )
        apiKey = found
      } else if (key === 'model') {
        if (value === '') throw new UsageError(`${source}: model= of ${name} needs a value`)
        model = value
      } else {
        throw new UsageError(
          `${source}: unknown setting ${JSON.stringify(key)} of upstream ${name}${didYouMean(key, SETTINGS)}; it takes ${SETTINGS.join(', ')}`,
        )
      }
    }
    into[name] = { url, apiKey, model }
  }
}
