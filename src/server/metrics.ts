import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { Hub } from '../hub/hub.js'

/**
 * Prometheus metrics of a hub, in their own registry (never prom-client's global one, so that two
 * hubs in one process, or an app's own metrics, do not collide). Values are read from
 * `hub.stats()` at scrape time: nothing is counted twice and the publish path pays nothing.
 *
 * Names follow Prometheus' conventions: every one starts `ssehub_`, a counter ends in `_total`, a
 * unit is a suffix in its base unit (`_bytes`, `_seconds`). The process and Node.js metrics are
 * prom-client's under the same prefix (`ssehub_process_cpu_user_seconds_total`,
 * `ssehub_nodejs_eventloop_lag_seconds`). docs/deployment.md lists ours; a test scrapes them.
 */
export function createMetrics(hub: Hub): Registry {
  const registry = new Registry()
  // prom-client's names already start `process_`/`nodejs_`: the prefix is ours alone.
  collectDefaultMetrics({ register: registry, prefix: 'ssehub_' })
  // `aggregator`: how `ssehub serve --workers` sums a gauge over its workers (prom-client's).
  const gauge = (
    name: string,
    help: string,
    read: () => number,
    aggregator: 'sum' | 'min' = 'sum',
  ): void => {
    new Gauge({
      name,
      help,
      aggregator,
      registers: [registry],
      collect() {
        this.set(read())
      },
    })
  }
  const counter = (name: string, help: string, read: () => number): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset()
        this.inc(read())
      },
    })
  }
  gauge('ssehub_connections', 'Open event-stream connections.', () => hub.stats().connections)
  gauge('ssehub_client_ids', 'Distinct client ids connected.', () => hub.stats().clientIds)
  gauge('ssehub_topics', 'Distinct topics with at least one connection.', () => hub.stats().topics)
  counter(
    'ssehub_events_published_total',
    'Publishes accepted by this node.',
    () => hub.stats().eventsPublished,
  )
  counter(
    'ssehub_events_in_total',
    'Publications received from the broker.',
    () => hub.stats().eventsIn,
  )
  counter(
    'ssehub_events_out_total',
    'Event frames written to connections.',
    () => hub.stats().eventsOut,
  )
  counter('ssehub_sent_bytes_total', 'Bytes written to connections.', () => hub.stats().bytesOut)
  counter(
    'ssehub_slow_consumer_closes_total',
    'Connections closed as slow consumers.',
    () => hub.stats().slowConsumerCloses,
  )
  counter('ssehub_evictions_total', 'Connections evicted at a limit.', () => hub.stats().evictions)
  counter(
    'ssehub_rejections_total',
    'Connections refused at a limit.',
    () => hub.stats().rejections,
  )
  gauge(
    'ssehub_broker_up',
    '1 when the broker accepts publishes.',
    () => (hub.broker.health().ok ? 1 : 0),
    'min',
  )
  return registry
}
