/**
 * The page served at `/`: live counters fed by the hub's own API. A small page with no framework;
 * the full dashboard (charts, inspector, publish form) grows from here.
 */
export const dashboardHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ssehub</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 52rem; padding: 0 1rem; color: #1d2330; }
  h1 { margin-bottom: 0; } .muted { color: #667; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(10rem, 1fr)); gap: .75rem; margin: 1.5rem 0; }
  .card { border: 1px solid #dde; border-radius: 8px; padding: .75rem 1rem; }
  .card b { display: block; font-size: 1.6rem; }
  code { background: #f3f4f8; padding: .1rem .3rem; border-radius: 4px; }
  pre { background: #f3f4f8; padding: .75rem; border-radius: 6px; overflow-x: auto; }
</style>
</head>
<body>
<h1>ssehub</h1>
<p class="muted">Server-Sent Events hub. This page refreshes its counters from <code>/stats</code>.</p>
<div class="grid" id="stats"></div>
<h2>Try it</h2>
<pre>curl -N 'http://HOST/events?topic=news'
curl -d topic=news -d data=hello http://HOST/publish</pre>
<script>
  const host = location.host
  for (const pre of document.querySelectorAll('pre')) pre.textContent = pre.textContent.replaceAll('HOST', host)
  const names = ['connections', 'clientIds', 'topics', 'eventsPublished', 'eventsOut', 'slowConsumerCloses', 'evictions']
  async function refresh() {
    try {
      const stats = await (await fetch('/stats')).json()
      document.getElementById('stats').replaceChildren(...names.map((name) => {
        const card = document.createElement('div')
        card.className = 'card'
        const value = document.createElement('b')
        value.textContent = String(stats[name])
        card.append(value, name)
        return card
      }))
    } catch {}
  }
  refresh()
  setInterval(refresh, 2000)
</script>
</body>
</html>
`
