'use strict'

/**
 * `npm run bench:instructions`: instructions executed on the main JS thread per `get` and
 * per `set` (concurrency 64), counted by `valgrind --tool=callgrind`, for ours and the
 * plaintext peers, next to the cost of `JSON.parse` / `JSON.stringify` of the same session
 * alone: the floor every store pays on that thread. Instruction counts do not depend on what
 * else the machine is doing, unlike the CPU times of `npm run bench`.
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
const OPERATIONS = ['get', 'set']

/** Main-thread instructions of one child run (`args` to `instructions-child.js`). */
async function countMain(args, env) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'srs-callgrind-'))
  const out = path.join(dir, 'cg.out')
  try {
    await run('valgrind', ['--tool=callgrind', '--separate-threads=yes',
      `--callgrind-out-file=${out}`, process.execPath,
      path.join(__dirname, 'instructions-child.js'), ...args], {
      env: { ...process.env, ...env }, maxBuffer: 1 << 24,
    })
    const summary = fs.readFileSync(`${out}-01`, 'utf8').match(/^summary: (\d+)/m)
    if (!summary) throw new Error('callgrind wrote no summary for the main thread')
    return Number(summary[1])
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** Instructions per operation: the difference of a long and a short run. */
async function perOperation(args, env) {
  const short = await countMain([...args, String(SHORT)], env)
  const long = await countMain([...args, String(LONG)], env)
  return (long - short) / (LONG - SHORT)
}

async function main() {
  await run('valgrind', ['--version']).catch(() => {
    throw new Error('valgrind is needed: apt-get install valgrind')
  })
  const redis = await startRedis()
  const rows = []
  try {
    for (const op of OPERATIONS) {
      const floor = await perOperation(['json', op])
      const counts = {}
      for (const name of CONTENDERS) {
        counts[name] = await perOperation(['store', name, op], { REDIS_URL: redis.url })
        process.stderr.write(`${op} ${name}: ${Math.round(counts[name])}\n`)
      }
      rows.push({ op, floor, counts })
    }
  } finally {
    await redis.stop()
  }
  process.stdout.write(report(rows))
}

function report(rows) {
  const header = ['operation', 'JSON alone', ...CONTENDERS, 'ours / best peer',
    'floor / best peer']
  const lines = [`| ${header.join(' | ')} |`, `|${' --- |'.repeat(header.length)}`]
  for (const { op, floor, counts } of rows) {
    const best = Math.min(...CONTENDERS.filter((n) => n !== 'ours').map((n) => counts[n]))
    const cells = CONTENDERS.map((n) => `${(counts[n] / 1000).toFixed(1)}k`)
    lines.push(`| ${op} c64 | ${(floor / 1000).toFixed(1)}k | ${cells.join(' | ')} | ` +
      `${(counts.ours / best).toFixed(2)}× | ${(floor / best).toFixed(2)}× |`)
  }
  const title = 'Main-thread instructions per operation (valgrind --tool=callgrind)'
  return `${title}\n\n${lines.join('\n')}\n`
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
