/**
 * The demo pages at `/demo/...`: each one a few lines of client code to copy, with no framework.
 * Served inline (no build step); every script only talks to this hub's own origin.
 */

const style = `<style>
  body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 46rem; padding: 0 1rem; color: #1d2330; }
  .muted { color: #667; } button { font: inherit; padding: .3rem .9rem; }
  #answer { white-space: pre-wrap; border: 1px solid #dde; border-radius: 8px; padding: 1rem; min-height: 6rem; }
  .bar { height: 1.4rem; background: #eef; border-radius: 6px; overflow: hidden; }
  .bar > div { height: 100%; width: 0; background: #3b6ef5; transition: width .1s; }
  table { border-collapse: collapse; } td, th { padding: .3rem 1rem; text-align: right; border-bottom: 1px solid #eee; }
  pre { background: #f3f4f8; padding: .75rem; border-radius: 6px; overflow-x: auto; font-size: 13px; }
  nav a { margin-right: 1rem; }
</style>`

const nav =
  '<nav><a href="/">dashboard</a><a href="/demo/chat">chat</a><a href="/demo/progress">progress</a><a href="/demo/ticker">ticker</a></nav>'

function page(title: string, body: string, script: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ssehub · ${title}</title><link rel="icon" href="/favicon.ico" type="image/svg+xml">${style}</head>
<body>${nav}<h1>${title}</h1>${body}
<h2>The code</h2><pre id="code"></pre>
<script>
${script.trim()}
document.getElementById('code').textContent = document.querySelector('script').textContent
</script>
</body></html>`
}

/**
 * `/demo/chat`: one generation relayed by the hub to every viewer (`POST /relays` on the upstream
 * `default`: the mock model, or `--llm-url`). The id in the URL is the generation: a refresh or a
 * second tab subscribes with `from=start` and shows the whole answer so far, then the rest; Stop
 * aborts it for everyone; closing the tabs does not.
 */
export const chatPage = page(
  'chat',
  `<p class="muted">One generation, relayed by the hub to every viewer of it. Refresh mid-answer, or open this page's link in another tab: the whole answer so far, then the rest. Stop stops it for every tab; closing tabs does not.</p>
<p><input id="prompt" size="40" value="What are Server-Sent Events?"> <button id="ask">Ask</button> <button id="stop" disabled>Stop</button></p>
<div id="answer"></div><p id="status" class="muted">idle</p>`,
  `
const $ = (id) => document.getElementById(id)
const post = (path, body) => fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
let id = new URLSearchParams(location.search).get('id')
let es
function watch() {
  es?.close()
  $('answer').textContent = ''
  $('stop').disabled = false
  // from=start: every token so far, then live; on a drop the browser resumes with Last-Event-ID.
  es = new EventSource('/events?from=start&topic=' + encodeURIComponent('relay/' + id))
  window.chatStream = es
  es.addEventListener('token', (e) => { $('answer').textContent += e.data; $('status').textContent = 'streaming' })
  es.addEventListener('done', () => { $('status').textContent = 'done'; $('stop').disabled = true })
  es.addEventListener('error', (e) => {
    if (e.data) { $('status').textContent = 'error: ' + JSON.parse(e.data).message; $('stop').disabled = true }
  })
}
$('ask').onclick = async () => {
  id = Math.random().toString(36).slice(2, 10)
  history.replaceState(null, '', '?id=' + id)
  const messages = [{ role: 'user', content: $('prompt').value }]
  const res = await post('/relays', { id, upstream: 'default', body: { messages } })
  if (!res.ok) { $('status').textContent = 'error: ' + (await res.json()).error.message; return }
  watch()
}
$('stop').onclick = () => post('/relays/' + encodeURIComponent(id) + '/abort', {})
if (id) watch()
`,
)

/** `/demo/progress`: a finite topic; the stream ends by itself at 100 %. */
export const progressPage = page(
  'progress',
  `<p class="muted">A task publishes <code>progress</code> events; its last one closes the topic, and the browser's EventSource ends CLOSED (the hub answers its reconnection with 204).</p>
<p><button id="start">Start a task</button></p>
<div class="bar"><div id="bar"></div></div><p id="status" class="muted">idle</p>`,
  `
const $ = (id) => document.getElementById(id)
$('start').onclick = () => {
  const id = Math.random().toString(36).slice(2, 10)
  const es = new EventSource('/events?topic=demo/progress/' + id)
  window.progressStream = es
  es.onopen = () => fetch('/demo/progress/start', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id }) })
  es.addEventListener('progress', (e) => {
    const { pct } = JSON.parse(e.data)
    $('bar').style.width = pct + '%'
    $('status').textContent = pct + ' %'
  })
  es.onerror = () => { if (es.readyState === EventSource.CLOSED) $('status').textContent += ' · stream closed' }
}
`,
)

/** `/demo/ticker`: prices pushed every 300 ms to every viewer. */
export const tickerPage = page(
  'ticker',
  `<p class="muted">Prices published every 300 ms on one topic, to every viewer.</p>
<table><thead><tr><th>symbol</th><th>price</th></tr></thead><tbody id="prices"></tbody></table>`,
  `
const es = new EventSource('/events?topic=demo/ticker')
es.addEventListener('prices', (e) => {
  const rows = Object.entries(JSON.parse(e.data)).map(([s, p]) => '<tr><td>' + s + '</td><td>' + p.toFixed(2) + '</td></tr>')
  document.getElementById('prices').innerHTML = rows.join('')
})
`,
)
