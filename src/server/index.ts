/** `ssehub/server`: the hub server (the HTTP API over a hub). */
export { createHubServer, isLoopbackHost, type HubServer, type HubServerOptions } from './server.js'
export { parsePublishBody, readBody } from './body.js'
export { createMetrics } from './metrics.js'
