'use strict'

/**
 * One measured run for `instructions.js`, under valgrind:
 * `json <get|set> <n>`: n JSON.parse or JSON.stringify of the benchmark sessions alone;
 * `store <contender> <get|set> <n>`: n calls through the Store API at concurrency 64.
 * Both warm up first, so that the difference of two lengths is the steady state.
 */

const { selectContenders } = require('./contenders')
const { makeSessions, sidGenerator } = require('./session')

const WARM_UP = 20_000
const CONCURRENCY = 64

function json(op, n) {
  const sessions = makeSessions(CONCURRENCY)
  const texts = sessions.map((session) => JSON.stringify(session))
  let sink = 0
  for (let i = 0; i < WARM_UP + n; i++) {
    if (op === 'get') sink += JSON.parse(texts[i % texts.length]).loginAt
    else sink += JSON.stringify(sessions[i % sessions.length]).length
  }
  if (sink === 0) throw new Error('nothing was computed')
}

/** `total` calls of `op`, `CONCURRENCY` loops each starting the next from its callback. */
function drive(store, op, total, sessions, sids) {
  let next = 0
  const loop = (resolve, reject) => {
    const step = () => {
      if (next >= total) return resolve()
      const i = next++
      const sid = sids[i % sids.length]
      const done = (err, value) => {
        if (err) return reject(err)
        if (op === 'get' && !value) return reject(new Error(`no session for ${sid}`))
        step()
      }
      if (op === 'set') store.set(sid, sessions[i % sessions.length], done)
      else store.get(sid, done)
    }
    step()
  }
  return Promise.all(Array.from({ length: CONCURRENCY }, () => new Promise(loop)))
}

async function storeRun(name, op, n) {
  const [contender] = selectContenders([name])
  const { store, close } = await contender.create(process.env.REDIS_URL, 'instructions secret')
  try {
    const sessions = makeSessions(CONCURRENCY)
    const sids = Array.from({ length: 4096 }, sidGenerator())
    await drive(store, 'set', sids.length, sessions, sids)
    await drive(store, op, WARM_UP, sessions, sids)
    await drive(store, op, n, sessions, sids)
  } finally {
    await close()
  }
}

const [mode, ...rest] = process.argv.slice(2)
const work = mode === 'json'
  ? Promise.resolve().then(() => json(rest[0], Number(rest[1])))
  : storeRun(rest[0], rest[1], Number(rest[2]))
work.catch((err) => {
  console.error(err)
  process.exitCode = 1
})
