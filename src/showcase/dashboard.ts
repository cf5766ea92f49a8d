/**
 * The page served at `/`: live counters, topics and client ids, an events/s chart, an event
 * inspector and a publish form. A small page with no framework. It is fed by the hub over SSE
 * (`GET /dashboard/events`, one `stats` event a second), not by polling. The publish key, when
 * one is set, is entered on this page and kept in its `sessionStorage` only: it is sent to this
 * origin's feed and API, never put in a link or shown to another page.
 */
export const dashboardHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>ssehub</title>
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
  .in { color: #3b6ef5; } .out { color: #e0602d; } #state { font-weight: 600; }
</style>
</head>
<body>
<nav><a href="/demo/chat">chat demo</a><a href="/demo/progress">progress demo</a><a href="/demo/ticker">ticker demo</a></nav>
<h1>ssehub</h1>
<p class="muted">Live from the hub over SSE: <span id="state">connecting</span></p>
<form id="login" hidden><label>Publish key <input id="key" type="password" autocomplete="off"></label> <button>Connect</button></form>
<div class="grid" id="cards"></div>
<h2>Events/s <span class="in">■ in</span> <span class="out">■ out</span> <span class="muted">(last 5 minutes)</span></h2>
<canvas id="chart" width="1000" height="140"></canvas>
<div class="cols">
<div><h2>Topics (online count)</h2><table><thead><tr><th>topic</th><th>connections</th></tr></thead><tbody id="topics"></tbody></table></div>
<div><h2>Client ids</h2><table><thead><tr><th>client id</th><th>connections</th><th></th></tr></thead><tbody id="clients"></tbody></table></div>
</div>
<div class="cols">
<div><h2>Event inspector</h2>
<form id="watch"><input id="watchTopics" placeholder="topics, comma-separated" size="30"> <button>Watch</button></form>
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
const points = []
let last, feed, inspector

function cards(s) {
  const items = [['connections', s.connections], ['client ids', s.clientIds], ['topics', s.topics],
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
function chart() {
  const c = $('chart'), g = c.getContext('2d'), max = Math.max(1, ...points.flatMap((p) => [p.in, p.out]))
  g.clearRect(0, 0, c.width, c.height)
  for (const [field, color] of [['in', '#3b6ef5'], ['out', '#e0602d']]) {
    g.beginPath(); g.strokeStyle = color; g.lineWidth = 2
    points.forEach((p, i) => { const x = (i / 299) * c.width, y = c.height - 4 - (p[field] / max) * (c.height - 8); i ? g.lineTo(x, y) : g.moveTo(x, y) })
    g.stroke()
  }
  g.fillStyle = '#667'; g.fillText(max.toFixed(0) + '/s', 4, 12)
}
function connect() {
  feed?.close()
  feed = new EventSource('/dashboard/events' + (key() ? '?key=' + encodeURIComponent(key()) : ''))
  feed.onopen = () => { $('state').textContent = 'live'; $('login').hidden = true }
  feed.onerror = () => {
    if (feed.readyState !== EventSource.CLOSED) { $('state').textContent = 'reconnecting'; return }
    $('state').textContent = 'needs the publish key'; $('login').hidden = false
  }
  feed.addEventListener('stats', (e) => {
    const snap = JSON.parse(e.data), s = snap.stats
    if (last) {
      const dt = Math.max(0.001, (snap.at - last.at) / 1000)
      points.push({ in: (s.eventsIn - last.stats.eventsIn) / dt, out: (s.eventsOut - last.stats.eventsOut) / dt })
      if (points.length > 300) points.shift()
    }
    last = snap
    cards(s); rows('topics', snap.topics); rows('clients', snap.clientIds, closeClient); chart()
  })
}
async function closeClient(id) {
  const res = await fetch('/clients/' + encodeURIComponent(id), { method: 'DELETE', headers: auth() })
  if (!res.ok) alert((await res.json()).error.message)
}
$('login').onsubmit = (e) => { e.preventDefault(); sessionStorage.setItem('ssehub.key', $('key').value); $('key').value = ''; connect() }
$('watch').onsubmit = (e) => {
  e.preventDefault(); inspector?.close(); $('log').replaceChildren()
  const topics = $('watchTopics').value.split(',').map((t) => t.trim()).filter(Boolean).slice(0, 32)
  if (topics.length === 0) return
  inspector = new EventSource('/events?' + topics.map((t) => 'topic=' + encodeURIComponent(t)).join('&'))
  const show = (e) => {
    const line = el('div', new Date().toLocaleTimeString() + '  #' + e.lastEventId + '  ' + e.type + '  ' + String(e.data).slice(0, 500))
    $('log').prepend(line)
    while ($('log').childElementCount > 200) $('log').lastChild.remove()
  }
  inspector.onmessage = show
  const names = new Set()
  inspector.addEventListener('open', () => {})
  // Named events: listen to the names the publish form and the demos use, and any typed in.
  for (const name of ['token', 'done', 'progress', 'prices', 'error', 'update']) { names.add(name); inspector.addEventListener(name, (e) => { if (e.data !== undefined) show(e) }) }
  window.watchEvent = (name) => { if (!names.has(name)) { names.add(name); inspector.addEventListener(name, show) } }
}
$('publish').onsubmit = async (e) => {
  e.preventDefault()
  const target = $('target').value, body = { data: $('data').value }
  if (target === 'all') body.all = true; else body[target] = $('to').value
  if ($('event').value) { body.event = $('event').value; window.watchEvent?.(body.event) }
  if ($('close').checked) body.close = true
  const res = await fetch('/publish', { method: 'POST', headers: { 'content-type': 'application/json', ...auth() }, body: JSON.stringify(body) })
  const json = await res.json()
  $('published').textContent = res.ok ? 'id ' + json.id + ' → ' + json.connections + ' connection(s)' : json.error.message
}
connect()
</script>
</body>
</html>
`
