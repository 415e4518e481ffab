'use strict'

/**
 * `sealed-redis-session rotate`: re-seals every session with the first key, one SCAN page at
 * a time, with a progress bar on stderr and a summary on stdout. After every page a state
 * file records the cursor and the counts, so that a run stopped midway (killed, Redis gone,
 * `--max-pages`) continues where it was when started again; it is removed at the end.
 * The state file holds no secret: the Redis address without credentials, the prefix, the
 * public fingerprint of the first key, the cursor and the counts.
 */

const fs = require('node:fs')
const path = require('node:path')

const DEFAULT_STATE_FILE = '.sealed-redis-session-rotate.json'
const STATE_VERSION = 1
const COUNTS = ['scanned', 'rotated', 'alreadyCurrent', 'changedMeanwhile', 'undecryptable']
const CURSOR = /^\d+(:\d+(:[^\s:][^\s]*:\d+)?)?$/
const BAR_WIDTH = 20

/** Exit codes of `rotate`. */
const EXIT = Object.freeze({ done: 0, undecryptable: 1, failed: 1, stopped: 3 })

/** A mistake in how the command was called: exit code 2, with this message. */
class UsageError extends Error {}

/**
 * What `rotate` needs besides the store, checked before anything connects: `{ statePath,
 * maxPages, redis, prefix }`. `redis` names the deployment without credentials.
 */
function rotateOptions(flags, positional, { keyCount, redis }) {
  if (positional.length > 0) throw new UsageError('rotate takes no argument')
  if (keyCount < 2) {
    throw new UsageError('rotate needs the new key first and the old key(s) after it: ' +
      '--key NEW --key OLD (or --secret NEW --secret OLD)')
  }
  return {
    statePath: path.resolve(flags.state || DEFAULT_STATE_FILE),
    maxPages: flags['max-pages'] === undefined ? Infinity
      : positiveInteger('--max-pages', flags['max-pages']),
    redis,
    prefix: flags.prefix === undefined ? 'session:' : flags.prefix,
  }
}

/** A positive whole number given as text, or a UsageError naming `flag`. */
function positiveInteger(flag, text) {
  const value = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new UsageError(`${flag} must be a positive whole number`)
  }
  return value
}

/** Runs the rotation; resolves to the exit code. */
async function rotate(store, options, io) {
  const walk = startWalk(options, io)
  const total = await countSessions(store, io)
  const started = Date.now()

  const outcome = await walkPages(store, walk, options, progressBar(io.err, total), io)
  if (outcome === 'failed') return EXIT.failed

  finish(walk, outcome, options, Date.now() - started, io)
  if (outcome === 'stopped') return EXIT.stopped
  return walk.counts.undecryptable > 0 ? EXIT.undecryptable : EXIT.done
}

/** Removes the state file of a finished walk, and reports. */
function finish(walk, outcome, options, elapsedMs, io) {
  if (outcome === 'stopped') {
    io.out.write(`stopped after ${walk.pagesThisRun} page(s) (--max-pages); run the same ` +
      `command again to continue from ${options.statePath}\n`)
  } else {
    fs.rmSync(options.statePath, { force: true })
  }
  io.out.write(summary(walk, elapsedMs))

  if (walk.counts.undecryptable > 0) warnUndecryptable(walk.counts.undecryptable, io)
}

/** The walk to do: from the state file when it has one for this Redis and prefix. */
function startWalk(options, io) {
  const state = loadState(options)
  if (state === null) return freshWalk()

  io.err.write(`resuming the rotation recorded in ${options.statePath}: ` +
    `${state.counts.scanned} keys done, cursor ${state.cursor}\n`)
  return { ...state, pagesThisRun: 0 }
}

function freshWalk() {
  const counts = Object.fromEntries(COUNTS.map((name) => [name, 0]))
  return { cursor: '0', counts, pages: 0, keyId: null, pagesThisRun: 0 }
}

/** The state file's walk, `null` when there is none; a UsageError when it cannot be used. */
function loadState(options) {
  let text
  try {
    text = fs.readFileSync(options.statePath, 'utf8')
  } catch (err) {
    if (err.code === 'ENOENT') return null
    throw new UsageError(`cannot read the state file ${options.statePath} (${err.code})`)
  }

  const state = parseState(text)
  if (state === null) {
    throw new UsageError(`${options.statePath} is not a rotation state file; ` +
      'remove it to start over')
  }
  if (state.redis !== options.redis || state.prefix !== options.prefix) {
    throw new UsageError(`${options.statePath} records the rotation of another Redis or ` +
      `prefix (${state.redis}, prefix "${state.prefix}"); finish that one, or remove the ` +
      'file, or pass another --state')
  }
  return state
}

/** The parsed state, or null when the text is not one this version wrote. */
function parseState(text) {
  let state
  try {
    state = JSON.parse(text)
  } catch {
    return null
  }
  const valid = state !== null && typeof state === 'object' &&
    state.version === STATE_VERSION && typeof state.redis === 'string' &&
    typeof state.prefix === 'string' && typeof state.cursor === 'string' &&
    CURSOR.test(state.cursor) && Number.isSafeInteger(state.pages) &&
    (state.keyId === null || typeof state.keyId === 'string') &&
    state.counts !== null && typeof state.counts === 'object' &&
    COUNTS.every((name) => Number.isSafeInteger(state.counts[name]))
  return valid ? state : null
}

/** Writes the state file whole (a new file renamed over the old one). */
function saveState(options, walk) {
  const state = {
    version: STATE_VERSION,
    redis: options.redis,
    prefix: options.prefix,
    keyId: walk.keyId,
    cursor: walk.cursor,
    pages: walk.pages,
    counts: walk.counts,
    updatedAt: new Date().toISOString(),
  }
  const partial = `${options.statePath}.partial`
  fs.writeFileSync(partial, `${JSON.stringify(state, null, 2)}\n`)
  fs.renameSync(partial, options.statePath)
}

/** The pre-pass: how many sessions there are under the prefix, for the progress bar. */
async function countSessions(store, io) {
  let total = 0
  let cursor = '0'
  do {
    const page = await store.countPage(cursor)
    total += page.keys
    cursor = page.cursor
    io.err.write(`\rcounting sessions... ${total}`)
  } while (cursor !== '0')
  io.err.write('\n')
  return total
}

/**
 * Rotates page after page, saving the state after each; resolves to 'done', 'stopped'
 * (`--max-pages`) or 'failed' (a Redis error, reported; the state file stays to resume).
 */
async function walkPages(store, walk, options, show, io) {
  try {
    const outcome = await rotatePages(store, walk, options, show, io)
    io.err.write('\n')
    return outcome
  } catch (err) {
    io.err.write(`\nrotation interrupted: ${err.message}\nrun the same command again to ` +
      `continue from ${options.statePath}\n`)
    return 'failed'
  }
}

async function rotatePages(store, walk, options, show, io) {
  for (;;) {
    const page = await store.rotatePage(walk.cursor)
    const restarted = addPage(walk, page, io)
    const finished = !restarted && walk.cursor === '0'
    show(walk, finished)
    if (finished) return 'done'

    saveState(options, walk)
    if (walk.pagesThisRun >= options.maxPages) return 'stopped'
  }
}

/**
 * Adds a page to the walk. If the first key is not the one the walk began with, the pages
 * before were sealed for another key: the walk starts over (values already on the new key
 * are skipped quickly), and this returns true.
 */
function addPage(walk, page, io) {
  walk.pagesThisRun += 1
  if (walk.keyId !== null && walk.keyId !== page.keyId) {
    io.err.write(`\nthe first key (${page.keyId}) is not the one this rotation began with ` +
      `(${walk.keyId}): starting over from the first page\n`)
    Object.assign(walk, freshWalk(), { keyId: page.keyId, pagesThisRun: walk.pagesThisRun })
    return true
  }
  walk.keyId = page.keyId
  walk.cursor = page.cursor
  walk.pages += 1
  for (const name of COUNTS) walk.counts[name] += page[name]
  return false
}

/** `show(walk, finished)` redraws the progress bar on `stream`. */
function progressBar(stream, total) {
  return (walk, finished) => {
    const { scanned, rotated, alreadyCurrent, changedMeanwhile, undecryptable } = walk.counts
    const ratio = finished || total === 0 ? 1 : Math.min(scanned / total, 1)
    const filled = Math.round(ratio * BAR_WIDTH)
    const bar = `${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}`
    const percent = `${Math.floor(ratio * 100)}%`.padStart(4)
    const failed = undecryptable > 0 ? ` undecryptable ${undecryptable}` : ''
    stream.write(`\r[${bar}] ${percent} ${scanned}/${total} rotated ${rotated} ` +
      `skipped ${alreadyCurrent} changed ${changedMeanwhile}${failed}`)
  }
}

function summary(walk, elapsedMs) {
  const { counts } = walk
  const lines = [
    `rotated:            ${counts.rotated} (now sealed with key ${walk.keyId ?? '-'})`,
    `already current:    ${counts.alreadyCurrent}`,
    `changed meanwhile:  ${counts.changedMeanwhile} (rewritten, destroyed or expired by ` +
      'live traffic: left as they are)',
    `undecryptable:      ${counts.undecryptable}`,
    `scanned:            ${counts.scanned} keys in ${walk.pages} page(s); this run took ` +
      `${elapsedMs} ms`,
  ]
  return `${lines.join('\n')}\n`
}

function warnUndecryptable(count, io) {
  io.err.write(`${count} stored value(s) open with none of the keys given and were left as ` +
    'they are: see `stats` for their key ids, and `inspect <sid>`\n')
}

module.exports = { UsageError, rotate, rotateOptions, positiveInteger }
