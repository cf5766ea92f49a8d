/** Hand-made SVG charts, small and dependency-free: a line chart and a grouped bar chart. */

const W = 640
const H = 360
const M = { left: 70, right: 150, top: 36, bottom: 48 }
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b']

/** One named line or bar group of a chart. */
export interface Series {
  readonly name: string
  readonly points: readonly (readonly [number, number])[]
}

const esc = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

function fmt(n: number): string {
  if (n >= 1e6) return `${+(n / 1e6).toFixed(1)}M`
  if (n >= 1e3) return `${+(n / 1e3).toFixed(1)}k`
  return `${+n.toFixed(2)}`
}

function frame(title: string, xLabel: string, yLabel: string, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>
<text x="${M.left + (W - M.left - M.right) / 2}" y="${H - 8}" text-anchor="middle">${esc(xLabel)}</text>
<text x="14" y="${M.top + (H - M.top - M.bottom) / 2}" text-anchor="middle" transform="rotate(-90 14 ${M.top + (H - M.top - M.bottom) / 2})">${esc(yLabel)}</text>
${body}</svg>
`
}

function legend(names: readonly string[]): string {
  return names
    .map(
      (name, i) =>
        `<rect x="${W - M.right + 12}" y="${M.top + i * 18}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/><text x="${W - M.right + 30}" y="${M.top + i * 18 + 10}">${esc(name)}</text>`,
    )
    .join('\n')
}

/** A line chart; `logX` for latency distributions. */
export function lineChart(options: {
  title: string
  xLabel: string
  yLabel: string
  series: readonly Series[]
  logX?: boolean
}): string {
  const all = options.series.flatMap((s) => s.points)
  const tx = (x: number): number => (options.logX === true ? Math.log10(Math.max(x, 1e-3)) : x)
  const xs = all.map(([x]) => tx(x))
  const ys = all.map(([, y]) => y)
  const x0 = xs.length === 0 ? 0 : Math.min(...xs)
  const x1 = xs.length === 0 ? 1 : Math.max(...xs, x0 + 1e-9)
  const y1 = ys.length === 0 ? 1 : Math.max(...ys, 1e-9) * 1.05
  const px = (x: number): number =>
    M.left + ((tx(x) - x0) / (x1 - x0 || 1)) * (W - M.left - M.right)
  const py = (y: number): number => H - M.bottom - (y / y1) * (H - M.top - M.bottom)
  const ticks: string[] = []
  for (let i = 0; i <= 4; i++) {
    const y = (y1 * i) / 4
    ticks.push(
      `<line x1="${M.left}" x2="${W - M.right}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/><text x="${M.left - 6}" y="${py(y) + 4}" text-anchor="end">${fmt(y)}</text>`,
    )
    const xt = x0 + ((x1 - x0) * i) / 4
    const xv = options.logX === true ? 10 ** xt : xt
    const xp = M.left + (i / 4) * (W - M.left - M.right)
    ticks.push(`<text x="${xp}" y="${H - M.bottom + 16}" text-anchor="middle">${fmt(xv)}</text>`)
  }
  const lines = options.series.map((s, i) => {
    const d = s.points
      .map(([x, y], j) => `${j === 0 ? 'M' : 'L'}${px(x).toFixed(1)},${py(y).toFixed(1)}`)
      .join(' ')
    const color = COLORS[i % COLORS.length]
    const dots =
      s.points.length <= 12
        ? s.points
            .map(
              ([x, y]) =>
                `<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${color}"/>`,
            )
            .join('')
        : ''
    return `<path d="${d}" fill="none" stroke="${color}" stroke-width="2"/>${dots}`
  })
  const axes = `<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="#333"/><line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#333"/>`
  return frame(
    options.title,
    options.xLabel,
    options.yLabel,
    [...ticks, axes, ...lines, legend(options.series.map((s) => s.name))].join('\n'),
  )
}

/** Grouped bars: one group per label, one bar per series. */
export function barChart(options: {
  title: string
  xLabel: string
  yLabel: string
  groups: readonly string[]
  series: readonly { name: string; values: readonly (number | null)[] }[]
}): string {
  const max = Math.max(1e-9, ...options.series.flatMap((s) => s.values.map((v) => v ?? 0))) * 1.1
  const plotW = W - M.left - M.right
  const plotH = H - M.top - M.bottom
  const groupW = plotW / Math.max(1, options.groups.length)
  const barW = (groupW * 0.8) / Math.max(1, options.series.length)
  const parts: string[] = []
  for (let i = 0; i <= 4; i++) {
    const y = (max * i) / 4
    const yp = H - M.bottom - (y / max) * plotH
    parts.push(
      `<line x1="${M.left}" x2="${W - M.right}" y1="${yp}" y2="${yp}" stroke="#ddd"/><text x="${M.left - 6}" y="${yp + 4}" text-anchor="end">${fmt(y)}</text>`,
    )
  }
  options.groups.forEach((group, g) => {
    parts.push(
      `<text x="${M.left + g * groupW + groupW / 2}" y="${H - M.bottom + 16}" text-anchor="middle">${esc(group)}</text>`,
    )
    options.series.forEach((s, i) => {
      const v = s.values[g]
      if (v === null || v === undefined) return
      const h = (v / max) * plotH
      const x = M.left + g * groupW + groupW * 0.1 + i * barW
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${(H - M.bottom - h).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[i % COLORS.length]}"><title>${esc(s.name)}: ${fmt(v)}</title></rect>`,
      )
    })
  })
  parts.push(
    `<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#333"/>`,
  )
  parts.push(legend(options.series.map((s) => s.name)))
  return frame(options.title, options.xLabel, options.yLabel, parts.join('\n'))
}
