/**
 * The hub server the micro benchmarks measure: `createHubServer` from the built package of a
 * checkout (`<dir>/dist`, so that two checkouts compare as they ship), with the limits meant for a
 * public server lifted and everything else at its default.
 */
import type * as serverModule from '../../src/server/index.js'

/** The hub server of the checkout at `dir`, not listening yet. */
export async function checkoutHub(
  dir: string,
  options: { readonly fastPath?: boolean } = {},
): Promise<serverModule.HubServer> {
  const { createHubServer } = (await import(`${dir}/dist/server/index.js`)) as typeof serverModule
  return createHubServer({
    heartbeatMs: null,
    maxConnections: null,
    maxConnectionsPerIp: null,
    maxConnectionsPerClient: null,
    publishRatePerSecond: null,
    metrics: false,
    ...options,
  })
}
