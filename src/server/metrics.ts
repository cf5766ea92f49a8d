import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { Hub } from '../hub/hub.js'

/**
 * Prometheus metrics of a hub, in their own registry (never prom-client's global one, so that two
 * hubs in one process, or an app's own metrics, do not collide). Values are read from
 * `hub.stats()` at scrape time: nothing is counted twice and the publish path pays nothing.
 */
export function createMetrics(hub: Hub): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'ssehub_process_' })
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
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
  counter('ssehub_bytes_out_total', 'Bytes written to connections.', () => hub.stats().bytesOut)
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
  gauge('ssehub_broker_up', '1 when the broker accepts publishes.', () =>
    hub.broker.health().ok ? 1 : 0,
  )
  return registry
}
