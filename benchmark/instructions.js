'use strict'

/**
 * `npm run bench:instructions`: instructions executed on the main JS thread per `get` and per
 * `set` (concurrency 64), counted by `valgrind --tool=callgrind`, for ours and the plaintext
 * peers, next to the cost of `JSON.parse` / `JSON.stringify` of the same session alone: the
 * least a store that hands sessions to V8 as JSON spends on that thread (ours does not: it
 * builds and reads them by shape, see lib/session-shape.js). A second table counts every thread of
 * the process, ours' native one included, with busy-polling off (under valgrind, whose threads
 * take turns, polling would only count its own spinning). Instruction counts do not depend on
 * what else the machine is doing, unlike the CPU times of `npm run bench`.
 *
 * Each figure is the difference between two runs of different lengths, divided by the
 * difference in operations, so start-up and warm-up cancel out. Takes a few minutes.
 */

const { execFile } = require('node:child_process')
const { promisify } = require('node:util')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { startRedis } = require('./redis')

const run = promisify(execFile)
const SHORT = 10_000
const LONG = 40_000
const CONTENDERS = ['ours', 'cr-redis', 'cr8-ioredis']
/** For the whole-process table: ours without busy-polling, and the peers. */
const PROCESS_CONTENDERS = ['ours-no-poll', 'cr-redis', 'cr8-ioredis']
const OPERATIONS = ['get', 'set']

/** Instructions of one child run (`args` to `instructions-child.js`): `{ main, all }`. */
async function countThreads(args, env) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'srs-callgrind-'))
  const out = path.join(dir, 'cg.out')
  try {
    await run('valgrind', ['--tool=callgrind', '--separate-threads=yes',
      `--callgrind-out-file=${out}`, process.execPath,
      path.join(__dirname, 'instructions-child.js'), ...args], {
      env: { ...process.env, ...env }, maxBuffer: 1 << 24,
    })
    const counts = { main: null, all: 0 }
    for (const file of fs.readdirSync(dir)) {
      const summary = fs.readFileSync(path.join(dir, file), 'utf8').match(/^summary: (\d+)/m)
      if (!summary) continue
      counts.all += Number(summary[1])
      if (file === 'cg.out-01') counts.main = Number(summary[1])
    }
    if (counts.main === null) throw new Error('callgrind wrote no summary for the main thread')
    return counts
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** Instructions per operation, `{ main, all }`: the difference of a long and a short run. */
async function perOperation(args, env) {
  const short = await countThreads([...args, String(SHORT)], env)
  const long = await countThreads([...args, String(LONG)], env)
  const per = (field) => (long[field] - short[field]) / (LONG - SHORT)
  return { main: per('main'), all: per('all') }
}

async function main() {
  await run('valgrind', ['--version']).catch(() => {
    throw new Error('valgrind is needed: apt-get install valgrind')
  })
  const redis = await startRedis()
  const rows = []
  try {
    for (const op of OPERATIONS) {
      // What JSON.parse / JSON.stringify of the session cost alone: the least a store that
      // hands JSON to V8 spends on Node's thread (ours does not, see lib/session-shape.js).
      const floor = (await perOperation(['json', op])).main
      const counts = {}
      for (const name of new Set([...CONTENDERS, ...PROCESS_CONTENDERS])) {
        counts[name] = await perOperation(['store', name, op], { REDIS_URL: redis.url })
        const { main, all } = counts[name]
        process.stderr.write(`${op} ${name}: main ${Math.round(main)}, all ${Math.round(all)}\n`)
      }
      rows.push({ op, floor, counts })
    }
  } finally {
    await redis.stop()
  }
  process.stdout.write(report(rows))
}

const thousands = (count) => `${(count / 1000).toFixed(1)}k`

function report(rows) {
  const header = ['operation', 'JSON alone', ...CONTENDERS, 'ours / best peer',
    'JSON alone / best peer']
  const lines = [`| ${header.join(' | ')} |`, `|${' --- |'.repeat(header.length)}`]
  for (const { op, floor, counts } of rows) {
    const main = (name) => counts[name].main
    const best = Math.min(...CONTENDERS.slice(1).map(main))
    const cells = CONTENDERS.map((name) => thousands(main(name)))
    lines.push(`| ${op} c64 | ${thousands(floor)} | ${cells.join(' | ')} | ` +
      `${(main('ours') / best).toFixed(2)}× | ${(floor / best).toFixed(2)}× |`)
  }
  const title = 'Main-thread instructions per operation (valgrind --tool=callgrind)'
  return `${title}\n\n${lines.join('\n')}\n\n${processReport(rows)}`
}

/** Every thread of the process: ours' main and native threads, the peers' main and helpers. */
function processReport(rows) {
  const [ours, ...peers] = PROCESS_CONTENDERS
  const header = ['operation', `${ours} main`, `${ours} other threads`, `${ours} in all`,
    ...peers.map((name) => `${name} in all`), 'ours / best peer']
  const lines = [`| ${header.join(' | ')} |`, `|${' --- |'.repeat(header.length)}`]
  for (const { op, counts } of rows) {
    const { main, all } = counts[ours]
    const best = Math.min(...peers.map((name) => counts[name].all))
    const cells = peers.map((name) => thousands(counts[name].all))
    lines.push(`| ${op} c64 | ${thousands(main)} | ${thousands(all - main)} | ` +
      `${thousands(all)} | ${cells.join(' | ')} | ${(all / best).toFixed(2)}× |`)
  }
  const title = 'Instructions per operation in the whole process, every thread'
  return `${title}\n\n${lines.join('\n')}\n`
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
