/**
 * `ssehub/showcase`: the dashboard and the demos, a part the hub server mounts beside its API.
 * `ssehub serve` mounts it; an application that embeds `createHubServer` mounts it when it wants
 * it:
 *
 * ```ts
 * createHubServer({ publishKey, mounts: [createShowcase({ demos: false })] })
 * ```
 */
import { booleanOption, positiveInteger, textOption } from '../options.js'
import type { HubServerMountFactory } from '../server/mount.js'
import { createWebRoutes } from './web-routes.js'

export { chatCompletionsUrl, type LlmUpstream } from './web-routes.js'

/** Options of {@link createShowcase}. */
export interface ShowcaseOptions {
  /** Serve the dashboard page at `/` and its feed at `/dashboard/events`. @default true */
  readonly dashboard?: boolean
  /** Serve the demos at `/demo/chat`, `/demo/progress`, `/demo/ticker`. @default true */
  readonly demos?: boolean
  /**
   * The OpenAI-compatible upstream the chat demo relays: a base URL (`http://host:8000`, `.../v1`)
   * or the full `/v1/chat/completions` URL. `null`: a built-in mock model streams a canned
   * answer. @default null
   */
  readonly llmUrl?: string | null
  /** Sent to the upstream as `Authorization: Bearer <llmKey>`. @default null */
  readonly llmKey?: string | null
  /** The `model` the chat demo asks the upstream for. @default 'gpt-4o-mini' */
  readonly llmModel?: string
  /** Pause between the mock model's tokens, in ms. @default 60 */
  readonly mockTokenDelayMs?: number
}

/** Every default of {@link ShowcaseOptions}, written once. */
export const SHOWCASE_DEFAULTS = Object.freeze({
  dashboard: true,
  demos: true,
  llmUrl: null,
  llmKey: null,
  llmModel: 'gpt-4o-mini',
  mockTokenDelayMs: 60,
} as const)

/** The names of {@link ShowcaseOptions}, to tell them from the server's. */
export const SHOWCASE_OPTION_NAMES = Object.keys(SHOWCASE_DEFAULTS) as (keyof ShowcaseOptions)[]

/**
 * Creates the showcase, to pass in `createHubServer`'s `mounts`.
 * @throws {TypeError | RangeError} for a bad option, naming it.
 */
export function createShowcase(options: ShowcaseOptions = {}): HubServerMountFactory {
  const d = SHOWCASE_DEFAULTS
  const llmUrl = textOption('llmUrl', options.llmUrl ?? d.llmUrl, true)
  if (llmUrl !== null && !/^https?:\/\/\S+$/.test(llmUrl))
    throw new TypeError(`Expected \`llmUrl\` to be an http(s) URL, got ${JSON.stringify(llmUrl)}`)
  const llmKey = textOption('llmKey', options.llmKey ?? d.llmKey, true)
  const llmModel = textOption('llmModel', options.llmModel ?? d.llmModel, false)!
  const resolved = {
    dashboard: booleanOption('dashboard', options.dashboard ?? d.dashboard),
    demos: booleanOption('demos', options.demos ?? d.demos),
    llm: llmUrl === null ? null : { url: llmUrl, apiKey: llmKey, model: llmModel },
    mockTokenDelayMs: positiveInteger(
      'mockTokenDelayMs',
      options.mockTokenDelayMs ?? d.mockTokenDelayMs,
    ),
  }
  return (hub) => createWebRoutes({ hub, ...resolved })
}
