/**
 * The page served at `/`: live counters, topics and client ids, an events/s chart, an event
 * inspector and a publish form. A small page with no framework. It is fed by the hub over SSE
 * (`GET /dashboard/events`, one `stats` event a second), not by polling, read with a small SSE
 * reader over `fetch` that the inspector shares: it hands over every event whatever its name
 * (the browser's EventSource dispatches named events only to listeners of those names) and the
 * status of a refusal. The publish key, when one is set, is entered on this page and kept in its
 * `sessionStorage` only; it travels in `Authorization` headers, never in a URL: each feed
 * connection trades it for a single-use ticket (`POST /dashboard/ticket`) that the feed URL
 * carries. A refused key is dropped and the refusal shown.
 */
export const dashboardHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>ssehub</title>
<link rel="icon" href="/favicon.ico" type="image/svg+xml">
<style>
  body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 70rem; padding: 0 1rem; color: #1d2330; }
  h1 { margin: 0; } h2 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; } .muted { color: #667; }
  nav a { margin-right: 1rem; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(9rem, 1fr)); gap: .6rem; margin: 1rem 0; }
  .card { border: 1px solid #dde; border-radius: 8px; padding: .5rem .8rem; }
  .card b { display: block; font-size: 1.4rem; }
  .cols { display: grid; grid-template-columns: 1fr 1fr; gap: 1.5rem; }
  table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: .2rem .4rem; border-bottom: 1px solid #eee; }
  #log { font: 12px ui-monospace, monospace; background: #f6f7fa; border-radius: 6px; padding: .5rem; height: 14rem; overflow-y: auto; white-space: pre-wrap; }
  input, select, textarea, button { font: inherit; } textarea { width: 100%; }
  canvas { width: 100%; height: 140px; border: 1px solid #eee; border-radius: 6px; }
  .in { color: #3b6ef5; } .out { color: #e0602d; } #state { font-weight: 600; } .refused { color: #b42318; font-weight: 600; }
</style>
</head>
<body>
<nav><a href="/demo/chat">chat demo</a><a href="/demo/progress">progress demo</a><a href="/demo/ticker">ticker demo</a></nav>
<h1>ssehub</h1>
<p class="muted">Live from the hub over SSE: <span id="state">connecting</span></p>
<form id="login" hidden><label>Publish key <input id="key" type="password" autocomplete="off"></label> <button>Connect</button> <span id="refused" class="refused" role="alert"></span></form>
<div class="grid" id="cards"></div>
<div id="cluster"><h2>Nodes <span id="clusterNote" class="muted"></span></h2><table><thead><tr><th>node</th><th>connections</th><th>client ids</th><th>topics</th><th>events in</th><th>events out</th><th>slow-consumer closes</th><th>reported</th></tr></thead><tbody id="nodes"></tbody></table></div>
<h2>Events/s <span class="in">■ in</span> <span class="out">■ out</span> <span id="window" class="muted">(from the first second on; up to the last 5 minutes)</span></h2>
<canvas id="chart" width="1000" height="140"></canvas>
<div class="cols">
<div><h2>Topics (online count)</h2><table><thead><tr><th>topic</th><th>connections</th></tr></thead><tbody id="topics"></tbody></table></div>
<div><h2>Client ids</h2><table><thead><tr><th>client id</th><th>connections</th><th></th></tr></thead><tbody id="clients"></tbody></table></div>
</div>
<div class="cols">
<div><h2>Event inspector</h2>
<form id="watch"><input id="watchTopics" placeholder="topics, comma-separated" size="30"> <button>Watch</button> <span id="watchState" class="muted"></span></form>
<div id="log"></div></div>
<div><h2>Publish</h2>
<form id="publish">
<p><select id="target"><option value="topic">topic</option><option value="clientId">client id</option><option value="all">all</option></select>
<input id="to" placeholder="news"> event <input id="event" placeholder="message" size="10">
<label><input id="close" type="checkbox"> close the topic</label></p>
<textarea id="data" rows="3" placeholder="data"></textarea>
<p><button>Publish</button> <span id="published" class="muted"></span></p>
</form></div>
</div>
<script>
const $ = (id) => document.getElementById(id)
const el = (tag, text) => { const e = document.createElement(tag); e.textContent = text; return e }
const key = () => sessionStorage.getItem('ssehub.key') || ''
const auth = () => (key() ? { authorization: 'Bearer ' + key() } : {})
const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms)
  signal.addEventListener('abort', () => { clearTimeout(timer); resolve() }, { once: true })
})
const WINDOW_MS = 300000
const points = []
let last, feed, inspector

async function messageOf(res) {
  const text = await res.text().catch(() => '')
  try { return JSON.parse(text).error.message } catch { return text.slice(0, 200) }
}

// A small SSE reader over fetch, after the WHATWG event stream rules: lines end at CRLF, LF or CR
// (a CR may end one chunk and its LF start the next); a blank line dispatches; one space after
// the colon is dropped. Unlike the browser's EventSource, it hands over every event whatever its
// name (EventSource dispatches a named event only to listeners of that name) and tells why a
// request was refused (EventSource only says "error").
async function readStream(url, { signal, lastEventId, onOpen, onEvent }) {
  const headers = { accept: 'text/event-stream' }
  if (lastEventId) headers['last-event-id'] = lastEventId
  const res = await fetch(url, { headers, cache: 'no-store', signal })
  if (res.status !== 200 || !(res.headers.get('content-type') || '').startsWith('text/event-stream')) {
    return { status: res.status, message: await messageOf(res) }
  }
  onOpen()
  let line = '', skipLF = false, data = null, name = '', id = lastEventId, retry
  const take = (text) => {
    if (text === '') {
      if (data !== null) onEvent({ type: name || 'message', data: data.join('\\n'), lastEventId: id })
      data = null; name = ''
      return
    }
    if (text[0] === ':') return
    const colon = text.indexOf(':')
    const field = colon === -1 ? text : text.slice(0, colon)
    let value = colon === -1 ? '' : text.slice(colon + 1)
    if (value[0] === ' ') value = value.slice(1)
    if (field === 'data') (data ??= []).push(value)
    else if (field === 'event') name = value
    else if (field === 'id') { if (!value.includes('\\0')) id = value }
    else if (field === 'retry') { if (/^\\d+$/.test(value)) retry = Number(value) }
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
  try {
    for (;;) {
      const { value: chunk, done } = await reader.read()
      if (done) break
      let i = skipLF && chunk[0] === '\\n' ? 1 : 0
      skipLF = false
      while (i < chunk.length) {
        const cr = chunk.indexOf('\\r', i), lf = chunk.indexOf('\\n', i)
        const end = cr === -1 ? lf : lf === -1 ? cr : Math.min(cr, lf)
        if (end === -1) { line += chunk.slice(i); break }
        take(line + chunk.slice(i, end)); line = ''
        i = end + 1
        if (chunk[end] === '\\r') { if (i === chunk.length) skipLF = true; else if (chunk[i] === '\\n') i++ }
      }
    }
  } catch {
    // Cut off or aborted: the caller reconnects or stops.
  }
  return { status: 200, lastEventId: id, retry }
}

// Follows a stream as EventSource does: reconnects after \`retry\` ms with Last-Event-ID when the
// stream ends or the network fails; 204 ends it; 401, 403 and other 4xx fail it with the hub's
// message; 429 and 5xx are retried. \`target()\` gives the URL of each attempt, or a refusal.
async function follow(target, on, signal) {
  let lastEventId = '', retry = 2000
  while (!signal.aborted) {
    let result
    try {
      const url = await target()
      result = typeof url === 'string'
        ? await readStream(url, { signal, lastEventId, onOpen: on.open, onEvent: on.event })
        : url
    } catch {
      result = { status: 0, message: 'the hub cannot be reached' }
    }
    if (signal.aborted) return
    if (result.status === 204) return on.end()
    if (result.status >= 400 && result.status < 500 && result.status !== 429) return on.fail(result)
    if (result.lastEventId !== undefined) lastEventId = result.lastEventId
    if (result.retry !== undefined) retry = result.retry
    on.retry(result.status === 200 ? 'reconnecting' : 'reconnecting (' + (result.status || 'network') + ': ' + result.message + ')')
    await sleep(retry, signal)
  }
}

// The cards count the whole cluster where the numbers add up (each node's last report, at most
// a heartbeat old); distinct topics and client ids are this node's.
function sum(nodes, field) { return nodes.reduce((total, n) => total + (n.stats[field] || 0), 0) }
function cluster(snap) {
  const nodes = snap.nodes || []
  $('clusterNote').textContent = snap.clusterError ? '(this node only: ' + snap.clusterError + ')'
    : nodes.length === 1 ? '(one node)' : '(' + nodes.length + ' nodes; this is ' + snap.node + ')'
  $('nodes').replaceChildren(...nodes.map((n) => {
    const tr = document.createElement('tr'), s = n.stats
    const age = Math.max(0, Math.round((snap.at - n.reportedAt) / 1000))
    for (const v of [n.node + (n.node === snap.node ? ' (this node)' : ''), s.connections, s.clientIds, s.topics, s.eventsIn, s.eventsOut, s.slowConsumerCloses, age + ' s ago'])
      tr.append(el('td', String(v ?? '')))
    return tr
  }))
}
function cards(s, nodes) {
  const all = nodes && nodes.length > 1
  const items = [[all ? 'connections (cluster)' : 'connections', all ? sum(nodes, 'connections') : s.connections], ['client ids', s.clientIds], ['topics', s.topics],
    ['events in', s.eventsIn], ['events out', s.eventsOut], ['slow-consumer closes', s.slowConsumerCloses],
    ['evictions', s.evictions], ['rejections', s.rejections]]
  $('cards').replaceChildren(...items.map(([name, value]) => { const c = el('div', name); c.className = 'card'; c.prepend(el('b', String(value))); return c }))
}
function rows(body, entries, action) {
  $(body).replaceChildren(...entries.map(([name, count]) => {
    const tr = document.createElement('tr'); tr.append(el('td', name), el('td', String(count)))
    if (action) { const td = document.createElement('td'); const b = el('button', 'close'); b.onclick = () => action(name); td.append(b); tr.append(td) }
    return tr
  }))
}
// 1, 2 or 5 times a power of ten, at least 1: a y axis that reads at a glance.
function niceMax(peak) {
  if (!(peak > 1)) return 1
  const power = 10 ** Math.floor(Math.log10(peak))
  return [1, 2, 5, 10].map((m) => m * power).find((v) => v >= peak)
}
const rate = (v) => (v >= 100 ? v.toFixed(0) : String(+v.toFixed(1))) + '/s'
const span = (ms) => (ms < 90000 ? Math.round(ms / 1000) + ' s' : Math.round(ms / 60000) + ' min')
// The x axis is the data collected so far (a flat line across the chart after the first second),
// growing to the last 5 minutes; the y axis runs from 0 to a round maximum above the peak.
function chart() {
  const c = $('chart'), g = c.getContext('2d'), left = 44, right = c.width - 4, top = 10, bottom = c.height - 6
  const max = niceMax(Math.max(0, ...points.flatMap((p) => [p.in, p.out])))
  g.clearRect(0, 0, c.width, c.height)
  g.font = '11px system-ui, sans-serif'; g.textBaseline = 'middle'; g.textAlign = 'right'; g.lineWidth = 1
  for (const f of [0, 0.5, 1]) {
    const y = Math.round(bottom - f * (bottom - top)) + 0.5
    g.strokeStyle = '#e4e6ee'; g.beginPath(); g.moveTo(left, y); g.lineTo(right, y); g.stroke()
    g.fillStyle = '#667'; g.fillText(f === 0 ? '0' : rate(f * max), left - 6, y)
  }
  if (points.length === 0) return
  const first = points[0].at, width = points[points.length - 1].at - first
  $('window').textContent = width > 0 ? '(last ' + span(width) + ')' : '(the last second)'
  // 'in' wider and under 'out': where the two rates are equal (one subscriber each) both show.
  for (const [field, color, lineWidth] of [['in', '#3b6ef5', 4], ['out', '#e0602d', 2]]) {
    g.beginPath(); g.strokeStyle = color; g.lineWidth = lineWidth; g.lineJoin = 'round'
    const y = (p) => bottom - (p[field] / max) * (bottom - top)
    if (points.length === 1) { g.moveTo(left, y(points[0])); g.lineTo(right, y(points[0])) }
    else points.forEach((p, i) => { const x = left + ((p.at - first) / width) * (right - left); i ? g.lineTo(x, y(p)) : g.moveTo(x, y(p)) })
    g.stroke()
  }
}
function stats(snap) {
  const s = snap.stats
  if (last && snap.at > last.at) {
    const dt = (snap.at - last.at) / 1000
    // Counters restart with the hub: a negative difference is a restart, not a rate.
    points.push({ at: snap.at, in: Math.max(0, (s.eventsIn - last.stats.eventsIn) / dt), out: Math.max(0, (s.eventsOut - last.stats.eventsOut) / dt) })
    while (points.length > 300 || snap.at - points[0].at > WINDOW_MS) points.shift()
  }
  last = snap
  cards(s, snap.nodes); cluster(snap); rows('topics', snap.topics); rows('clients', snap.clientIds, closeClient); chart()
}

// The key never goes in a URL: each feed connection first trades it (in a header) for a
// single-use ticket that expires within 30 s, and the feed URL carries the ticket.
async function feedUrl() {
  const res = await fetch('/dashboard/ticket', { method: 'POST', headers: auth(), cache: 'no-store' })
  if (!res.ok) return { status: res.status, message: await messageOf(res) }
  return '/dashboard/events?ticket=' + encodeURIComponent((await res.json()).ticket)
}
function refused(status, message) {
  const sent = key() !== ''
  sessionStorage.removeItem('ssehub.key')
  $('state').textContent = 'needs the publish key'
  $('login').hidden = false
  $('refused').textContent = !sent ? ''
    : status === 401 ? 'This key was refused (401): it is not this hub\\u2019s publish key or a valid token.'
    : 'This key was refused (' + status + '): ' + message
  $('key').focus()
}
function connect() {
  feed?.abort()
  feed = new AbortController()
  $('state').textContent = 'connecting'
  follow(feedUrl, {
    open: () => { $('state').textContent = 'live'; $('login').hidden = true; $('refused').textContent = '' },
    event: (e) => { if (e.type === 'stats') stats(JSON.parse(e.data)) },
    retry: (why) => { $('state').textContent = why },
    end: () => { $('state').textContent = 'the feed ended' },
    fail: ({ status, message }) => (status === 401 || status === 403 ? refused(status, message) : ($('state').textContent = 'feed refused (' + status + '): ' + message)),
  }, feed.signal)
}
async function closeClient(id) {
  const res = await fetch('/clients/' + encodeURIComponent(id), { method: 'DELETE', headers: auth() })
  if (!res.ok) alert(await messageOf(res))
}
$('login').onsubmit = (e) => { e.preventDefault(); sessionStorage.setItem('ssehub.key', $('key').value); $('key').value = ''; connect() }
$('watch').onsubmit = (e) => {
  e.preventDefault(); inspector?.abort(); $('log').replaceChildren()
  const topics = $('watchTopics').value.split(',').map((t) => t.trim()).filter(Boolean).slice(0, 32)
  if (topics.length === 0) { $('watchState').textContent = ''; return }
  inspector = new AbortController()
  const url = '/events?' + topics.map((t) => 'topic=' + encodeURIComponent(t)).join('&')
  const state = (text) => { $('watchState').textContent = text }
  state('connecting')
  // Every event on the topics, whatever its name: read with the page's own reader, not EventSource.
  follow(async () => url, {
    open: () => state('watching ' + topics.join(', ')),
    event: (e) => {
      $('log').prepend(el('div', new Date().toLocaleTimeString() + '  #' + e.lastEventId + '  ' + e.type + '  ' + e.data.slice(0, 500)))
      while ($('log').childElementCount > 200) $('log').lastChild.remove()
    },
    retry: state,
    end: () => state('the stream ended (204): these topics are closed'),
    fail: ({ status, message }) => state('refused (' + status + '): ' + message),
  }, inspector.signal)
}
$('publish').onsubmit = async (e) => {
  e.preventDefault()
  const target = $('target').value, body = { data: $('data').value }
  if (target === 'all') body.all = true; else body[target] = $('to').value
  if ($('event').value) body.event = $('event').value
  if ($('close').checked) body.close = true
  const res = await fetch('/publish', { method: 'POST', headers: { 'content-type': 'application/json', ...auth() }, body: JSON.stringify(body) })
  const json = await res.json()
  $('published').textContent = res.ok ? 'id ' + json.id + ' \\u2192 ' + json.localConnections + ' connection(s) on this node' : json.error.message
}
connect()
</script>
</body>
</html>
`
