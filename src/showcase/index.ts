/**
 * `ssehub/showcase`: the dashboard and the demos, a part the hub server mounts beside its API.
 * `ssehub serve` mounts it; an application that embeds `createHubServer` mounts it when it wants
 * it:
 *
 * ```ts
 * createHubServer({ publishKey, mounts: [createShowcase({ demos: false })] })
 * ```
 */
import { booleanOption } from '../options.js'
import type { HubServerMountFactory } from '../server/mount.js'
import { createWebRoutes } from './web-routes.js'

/** Options of {@link createShowcase}. */
export interface ShowcaseOptions {
  /** Serve the dashboard page at `/` and its feed at `/dashboard/events`. @default true */
  readonly dashboard?: boolean
  /**
   * Serve the demos at `/demo/chat`, `/demo/progress`, `/demo/ticker`. The chat demo starts
   * generations with `POST /relays` on the relay upstream `default` (`ssehub serve` makes it a
   * mock model unless `--llm-url` or `--relay-upstream default=...` names one). @default true
   */
  readonly demos?: boolean
}

/** Every default of {@link ShowcaseOptions}, written once. */
export const SHOWCASE_DEFAULTS = Object.freeze({
  dashboard: true,
  demos: true,
} as const)

/** The names of {@link ShowcaseOptions}, to tell them from the server's. */
export const SHOWCASE_OPTION_NAMES = Object.keys(SHOWCASE_DEFAULTS) as (keyof ShowcaseOptions)[]

/**
 * Creates the showcase, to pass in `createHubServer`'s `mounts`.
 * @throws {TypeError | RangeError} for a bad option, naming it.
 */
export function createShowcase(options: ShowcaseOptions = {}): HubServerMountFactory {
  const d = SHOWCASE_DEFAULTS
  const resolved = {
    dashboard: booleanOption('dashboard', options.dashboard ?? d.dashboard),
    demos: booleanOption('demos', options.demos ?? d.demos),
  }
  return (hub) => createWebRoutes({ hub, ...resolved })
}
