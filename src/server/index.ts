/** `ssehub/server`: the hub server (the HTTP API over a hub). */
export {
  createHubServer,
  isLoopbackHost,
  type AuthRefusal,
  type HubServer,
  type HubServerOptions,
} from './server.js'
export { SERVER_DEFAULTS, type ResolvedServerOptions } from './server-options.js'
export type { HubServerMount, HubServerMountFactory, MountRequest } from './mount.js'
export { parsePublishBody, readBody } from './body.js'
export { createMetrics } from './metrics.js'
