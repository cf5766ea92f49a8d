/**
 * ssehub as the bench runs it: `createHubServer` with the limits meant for a public server
 * lifted (connections, per-IP, publish rate), everything else at its default. History size and
 * heartbeat come from the environment so the feature-cost rows can vary them.
 */
// Run from dist/ (builtFile): the built server, as `npm start` and users run it, not the sources
// through tsx, whose transform adds work to hot paths (esbuild's keep-names wrappers).
import { createHubServer } from '../../server/index.js'
import { serve } from './harness.js'

const historyMaxEvents = Number(process.env.BENCH_HISTORY_MAX_EVENTS ?? 10_000)
const hubServer = createHubServer({
  maxConnections: null,
  maxConnectionsPerIp: null,
  maxConnectionsPerClient: null,
  publishRatePerSecond: null,
  maxTopicsPerPublish: 100,
  historyMaxEvents,
  metrics: false,
  fastPath: process.env.BENCH_FAST_PATH !== '0',
})
serve(hubServer.server)
