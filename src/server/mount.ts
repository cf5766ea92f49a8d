/**
 * Optional parts a hub server mounts beside its API: the showcase (dashboard, demos) is one.
 * A mount sees only what the API's own routes did not take, uses the server's one operator rule,
 * and answers on node:http's request and response. The server does not know what is mounted, so
 * the API server does not depend on the showcase (nor, through it, on the client).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Hub } from '../hub/hub.js'

/** What a mounted part is given for each request. */
export interface MountRequest {
  /** The path, as sent, without the query. */
  readonly path: string
  /** The query, parsed on first use. */
  query(): URLSearchParams
  /**
   * The server's operator rule: resolves when the request carries the operator's credentials
   * (or the hub is open), else rejects with 401 (`message`) or 403. The publish key is read from
   * `Authorization` only, never from the URL (a token is read where the hub's token rule says).
   */
  operator(where: { readonly message: string }): Promise<void>
}

/** A mounted part. */
export interface HubServerMount {
  /**
   * Answers `req` when it is this part's: resolves `true` once answered (or streaming), `false`
   * when the request is not its own (then the server answers 404). A rejection with an SseError
   * is answered as the API answers errors.
   */
  handle(req: IncomingMessage, res: ServerResponse, request: MountRequest): Promise<boolean>
  /** Stops its work (timers, feeds, running demos): the server is closing. */
  close(): void
}

/** Makes a mounted part for the server's hub. */
export type HubServerMountFactory = (hub: Hub) => HubServerMount
