'use strict'

/**
 * Medians over rounds, markdown tables with ratios to the best plaintext peer, the target
 * checks, and results.md.
 */

const fs = require('node:fs')

const OP_NAMES = { set: 'set', get: 'get', touch: 'touch', destroy: 'destroy', setget: 'set+get' }

function median(values) {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** (max - min) / median, as a percentage. */
function spread(values) {
  if (values.length < 2) return NaN
  return ((Math.max(...values) - Math.min(...values)) / median(values)) * 100
}

const fmt = {
  rate: (v) => (v >= 10000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(0)),
  ms: (v) => (v < 1 ? v.toFixed(3) : v.toFixed(2)),
  us: (v) => v.toFixed(1),
  bytes: (v) => v.toFixed(0),
  pct: (v) => `±${(v / 2).toFixed(0)}%`,
}

function cell(value, best, format) {
  if (!Number.isFinite(value)) return '—'
  if (!Number.isFinite(best) || best === 0) return format(value)
  return `${format(value)} (${(value / best).toFixed(2)}×)`
}

function table(header, rows) {
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => ' --- ').join('|')}|`]
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`)
  return lines.join('\n')
}

/** The best value among plaintext peers: the highest when `higher`, else the lowest. */
function bestPeer(contenders, valueOf, higher) {
  const values = contenders.filter((c) => c.role === 'peer').map(valueOf)
    .filter((v) => Number.isFinite(v))
  if (values.length === 0) return NaN
  return higher ? Math.max(...values) : Math.min(...values)
}

function columns(config) {
  const out = []
  for (const op of config.operations) {
    for (const c of config.concurrencies) out.push({ op, c, key: `${op}@${c}` })
  }
  return out
}

/** Medians of every micro measure: `micro[name][op@c][metric]`. */
function summarizeMicro(results, contenders, config) {
  const out = {}
  for (const contender of contenders) {
    out[contender.name] = {}
    for (const { key } of columns(config)) {
      const rounds = results.micro[contender.name][key] || []
      const metric = (f) => median(rounds.map(f))
      out[contender.name][key] = {
        opsPerSec: metric((r) => r.opsPerSec),
        spread: spread(rounds.map((r) => r.opsPerSec)),
        p50: metric((r) => r.p50),
        p99: metric((r) => r.p99),
        cpuProcess: metric((r) => r.cpuProcess),
        cpuMain: metric((r) => r.cpuMain),
        tokio: metric((r) => r.cpuGroups.tokio),
        other: metric((r) => r.cpuGroups.other),
      }
    }
  }
  return out
}

function summarizeCeiling(results, config) {
  const out = {}
  for (const c of config.concurrencies) {
    for (const op of ['set', 'get']) {
      const rounds = results.ceiling[`${op}@${c}`] || []
      out[`${op}@${c}`] = {
        opsPerSec: median(rounds.map((r) => r.opsPerSec)),
        p50: median(rounds.map((r) => r.p50)),
        p99: median(rounds.map((r) => r.p99)),
      }
    }
  }
  return out
}

function summarizeHttp(results, contenders) {
  const out = {}
  for (const contender of contenders) {
    const rounds = results.http[contender.name] || []
    const metric = (f) => median(rounds.map(f))
    out[contender.name] = {
      reqPerSec: metric((r) => r.reqPerSec),
      spread: spread(rounds.map((r) => r.reqPerSec)),
      p50: metric((r) => r.p50),
      p99: metric((r) => r.p99),
      cpuProcess: metric((r) => r.cpuProcess),
      cpuMain: metric((r) => r.cpuMain),
      failures: rounds.reduce((sum, r) => sum + r.failures, 0),
    }
  }
  return out
}

/** One table of a micro measure: rows are contenders, columns are operation × concurrency. */
function microTable(title, metric, format, higher, ctx) {
  const { micro, ceiling, contenders, config } = ctx
  const cols = columns(config)
  const header = ['contender', ...cols.map(({ op, c }) => `${OP_NAMES[op]} c${c}`)]
  const best = cols.map(({ key }) =>
    bestPeer(contenders, (x) => micro[x.name][key][metric], higher))
  const rows = contenders.map((x) => [x.label,
    ...cols.map(({ key }, i) => cell(micro[x.name][key][metric], best[i], format))])
  if (ceiling && metric in Object.values(ceiling)[0]) {
    rows.push(['redis-benchmark (ceiling)', ...cols.map(({ key }, i) =>
      (ceiling[key] ? cell(ceiling[key][metric], best[i], format) : '—'))])
  }
  return `### ${title}\n\n${table(header, rows)}`
}

function spreadTable(ctx) {
  const { micro, http, contenders, config } = ctx
  const cols = columns(config)
  const header = ['contender', ...cols.map(({ op, c }) => `${OP_NAMES[op]} c${c}`)]
  if (http) header.push('end-to-end')
  const rows = contenders.map((x) => {
    const row = [x.label, ...cols.map(({ key }) => fmtSpread(micro[x.name][key].spread))]
    if (http) row.push(fmtSpread(http[x.name].spread))
    return row
  })
  return '### Noise: half the range of ops/s across rounds, relative to the median\n\n' +
    table(header, rows)
}

function fmtSpread(value) {
  return Number.isFinite(value) ? fmt.pct(value) : '—'
}

/** Where the CPU of each operation goes, by thread group, at the highest concurrency. */
function threadTable(ctx) {
  const { micro, contenders, config } = ctx
  const c = Math.max(...config.concurrencies)
  const header = ['contender', 'operation', 'main thread', 'tokio threads', 'other threads',
    'process']
  const rows = []
  for (const op of ['get', 'set', 'touch', 'destroy']) {
    if (!config.operations.includes(op)) continue
    for (const x of contenders) {
      const m = micro[x.name][`${op}@${c}`]
      rows.push([x.label, `${OP_NAMES[op]} c${c}`, fmt.us(m.cpuMain), fmt.us(m.tokio),
        fmt.us(m.other), fmt.us(m.cpuProcess)])
    }
  }
  return `### CPU µs per operation by thread (c${c}; tokio = the addon's Rust runtime)\n\n` +
    table(header, rows)
}

function memoryTable(ctx) {
  const { memory, jsonBytes, contenders } = ctx
  const best = bestPeer(contenders, (x) => memory[x.name].bytes, false)
  const header = ['contender', 'MEMORY USAGE bytes/session', 'value bytes (STRLEN)',
    'session readable in Redis', 'keys sampled']
  const rows = contenders.map((x) => {
    const m = memory[x.name]
    return [x.label, cell(m.bytes, best, fmt.bytes), fmt.bytes(m.valueBytes),
      m.readable ? 'yes' : 'no', String(m.keys)]
  })
  return `### Bytes per session in Redis (session JSON: ${jsonBytes} bytes; ` +
    'key: 8-byte prefix + 32-byte sid)\n\n' + table(header, rows)
}

function httpTable(ctx) {
  const { http, contenders, config } = ctx
  const best = {
    reqPerSec: bestPeer(contenders, (x) => http[x.name].reqPerSec, true),
    p50: bestPeer(contenders, (x) => http[x.name].p50, false),
    p99: bestPeer(contenders, (x) => http[x.name].p99, false),
    cpuProcess: bestPeer(contenders, (x) => http[x.name].cpuProcess, false),
    cpuMain: bestPeer(contenders, (x) => http[x.name].cpuMain, false),
  }
  const header = ['contender', 'req/s', 'p50 ms', 'p99 ms', 'app CPU µs/req (process)',
    'app CPU µs/req (main thread)', 'failed requests']
  const rows = contenders.map((x) => {
    const h = http[x.name]
    return [x.label, cell(h.reqPerSec, best.reqPerSec, fmt.rate), cell(h.p50, best.p50, fmt.ms),
      cell(h.p99, best.p99, fmt.ms), cell(h.cpuProcess, best.cpuProcess, fmt.us),
      cell(h.cpuMain, best.cpuMain, fmt.us), String(h.failures)]
  })
  return `### End to end: Express + express-session, GET /me, ${config.httpConnections} ` +
    `connections, ${config.httpSeconds} s per contender per round\n\n${table(header, rows)}`
}

/** The target checks, as `PASS`/`FAIL` lines. */
function targets(ctx) {
  const { micro, http, memory, jsonBytes, contenders, config } = ctx
  const ours = contenders.find((x) => x.role === 'ours')
  if (!ours || !contenders.some((x) => x.role === 'peer')) {
    return ['(ours and a plaintext peer are needed for the checks)']
  }
  const lines = []
  const check = (ok, text) => lines.push(`${ok ? 'PASS' : 'FAIL'}  ${text}`)
  const best = (key, metric, higher) => bestPeer(contenders, (x) => micro[x.name][key][metric],
    higher)
  const ratio = (a, b) => `${(a / b).toFixed(2)}×`
  const hi = Math.max(...config.concurrencies)

  const sg = micro[ours.name][`setget@${hi}`].opsPerSec
  const sgBest = best(`setget@${hi}`, 'opsPerSec', true)
  check(sg >= 1.5 * sgBest, `set+get c${hi} ops/s >= 1.5× best peer: ${fmt.rate(sg)} vs ` +
    `${fmt.rate(sgBest)} (${ratio(sg, sgBest)})`)
  for (const op of ['get', 'set']) {
    for (const c of config.concurrencies) {
      const v = micro[ours.name][`${op}@${c}`].cpuMain
      const b = best(`${op}@${c}`, 'cpuMain', false)
      check(v <= 0.5 * b, `main-thread CPU per ${op} c${c} <= 0.5× best peer: ` +
        `${fmt.us(v)} vs ${fmt.us(b)} µs (${ratio(v, b)})`)
    }
  }
  for (const op of config.operations) {
    const v = micro[ours.name][`${op}@1`].p50
    const b = best(`${op}@1`, 'p50', false)
    check(v <= b, `p50 c1 ${OP_NAMES[op]} no worse than best peer: ${fmt.ms(v)} vs ` +
      `${fmt.ms(b)} ms (${ratio(v, b)})`)
  }
  if (http) {
    const v = http[ours.name].reqPerSec
    const b = bestPeer(contenders, (x) => http[x.name].reqPerSec, true)
    check(v >= b, `end-to-end req/s >= best peer: ${fmt.rate(v)} vs ${fmt.rate(b)} ` +
      `(${ratio(v, b)})`)
  }
  const plain = bestPeer(contenders, (x) => memory[x.name].bytes, false)
  const m = memory[ours.name]
  check(m.bytes <= plain + 40, `bytes/session <= plaintext JSON + 40: ${fmt.bytes(m.bytes)} vs ` +
    `${fmt.bytes(plain)} + 40 in MEMORY USAGE (value ${fmt.bytes(m.valueBytes)} vs JSON ` +
    `${jsonBytes} + 40)`)
  return lines
}

function machineSection(machine, config) {
  const knobs = `rounds ${config.rounds}, ${config.seconds} s per phase, ` +
    `${config.httpSeconds} s per HTTP run${config.quick ? ' (BENCH_QUICK)' : ''}`
  return ['## Machine', '',
    `- date: ${machine.date}`,
    `- nproc: ${machine.nproc}; CPU: ${machine.cpu}`,
    `- Node ${machine.node}; Redis ${machine.redis}`,
    `- load average at start / end: ${machine.loadStart} / ${machine.loadEnd}`,
    `- run: ${knobs}; ${machine.duration}`].join('\n')
}

/** Builds every table; prints them and the checks, and writes `config.output`. */
function report(results, contenders, config, machine) {
  const ctx = {
    contenders, config, jsonBytes: results.jsonBytes, memory: results.memory,
    micro: summarizeMicro(results, contenders, config),
    ceiling: results.ceiling ? summarizeCeiling(results, config) : null,
    http: config.skipHttp ? null : summarizeHttp(results, contenders),
  }
  const roles = { ours: 'ours', variant: 'ours, an option changed', peer: 'plaintext peer',
    encrypted: 'encrypted peer' }
  const legend = contenders.map((x) => `- ${x.label} (\`${x.name}\`): ${roles[x.role]}`)
  const note = 'Medians over rounds. In parentheses: ratio to the best plaintext peer ' +
    '(best connect-redis variant without encryption) in that column. redis-benchmark uses ' +
    '64 connections at -P 1, so a client that pipelines on one connection can beat it.\n\n' +
    legend.join('\n')
  const sections = [
    microTable('Throughput, ops/s (higher is better)', 'opsPerSec', fmt.rate, true, ctx),
    microTable('p50 latency, ms (lower is better)', 'p50', fmt.ms, false, ctx),
    microTable('p99 latency, ms (lower is better)', 'p99', fmt.ms, false, ctx),
    microTable('CPU µs per operation, whole Node process (lower is better)', 'cpuProcess',
      fmt.us, false, { ...ctx, ceiling: null }),
    microTable('CPU µs per operation, main JS thread (lower is better)', 'cpuMain', fmt.us,
      false, { ...ctx, ceiling: null }),
    memoryTable(ctx),
  ]
  if (ctx.http) sections.push(httpTable(ctx))
  sections.push(threadTable(ctx))
  if (config.rounds > 1) sections.push(spreadTable(ctx))
  const checks = targets(ctx)
  const body = `${note}\n\n${sections.join('\n\n')}\n\n### Targets\n\n` +
    `\`\`\`\n${checks.join('\n')}\n\`\`\``
  console.log(`\n${body}\n`)
  const doc = `# Benchmark results\n\n${machineSection(machine, config)}\n\n${body}\n`
  fs.writeFileSync(config.output, doc)
  console.log(`written to ${config.output}`)
  return checks
}

module.exports = { report, median }
