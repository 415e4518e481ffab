'use strict'

/**
 * Settings of a benchmark run, from the environment. BENCH_QUICK=1 is a ~1 minute smoke run,
 * and every other knob overrides the defaults of the chosen mode.
 */

const QUICK = process.env.BENCH_QUICK === '1'

const DEFAULTS = QUICK
  ? { rounds: 1, seconds: 0.4, httpSeconds: 2, warmupSeconds: 0.15, benchSeconds: 0.3 }
  : { rounds: 3, seconds: 1.5, httpSeconds: 5, warmupSeconds: 0.4, benchSeconds: 1 }

function number(name, fallback) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`)
  return value
}

function list(name) {
  const raw = process.env[name]
  return raw ? raw.split(',').map((s) => s.trim()).filter(Boolean) : null
}

const config = {
  quick: QUICK,
  rounds: Math.round(number('BENCH_ROUNDS', DEFAULTS.rounds)),
  seconds: number('BENCH_SECONDS', DEFAULTS.seconds),
  httpSeconds: number('BENCH_HTTP_SECONDS', DEFAULTS.httpSeconds),
  warmupSeconds: number('BENCH_WARMUP_SECONDS', DEFAULTS.warmupSeconds),
  benchSeconds: number('BENCH_REDIS_BENCHMARK_SECONDS', DEFAULTS.benchSeconds),
  concurrencies: [1, 64],
  httpConnections: 50,
  operations: ['set', 'get', 'touch', 'destroy', 'setget'],
  only: list('BENCH_ONLY'),
  skipHttp: process.env.BENCH_SKIP_HTTP === '1',
  output: process.env.BENCH_OUTPUT || require('node:path').join(__dirname, 'results.md'),
  secret: 'benchmark-secret-0123456789abcdef-0123456789abcdef',
}

module.exports = { config }
