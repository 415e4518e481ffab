'use strict'

/**
 * The workload's data: a realistic ~250-byte session as express-session hands it to a store
 * (a `Cookie` instance whose `expires` is a Date, plus a few fields), and distinct sids.
 */

const crypto = require('node:crypto')
const { Cookie } = require('express-session')

const DAY_MS = 24 * 60 * 60 * 1000

/** Fields a logged-in session carries besides its cookie (also used by the HTTP app). */
function sessionFields(n) {
  return {
    userId: `user-${String(100000 + n)}`,
    role: 'member',
    locale: 'en-US',
    csrfSecret: crypto.createHash('sha256').update(String(n)).digest('base64url').slice(0, 24),
    loginAt: 1733332509969 + n,
  }
}

/** The cookie options of every session, in the micro benchmarks and the HTTP app alike. */
const COOKIE = { maxAge: DAY_MS, httpOnly: true, secure: false, sameSite: 'lax', path: '/' }

/** `count` distinct session objects, reused round-robin (stores do not mutate them). */
function makeSessions(count) {
  const sessions = []
  for (let n = 0; n < count; n++) {
    sessions.push({ cookie: new Cookie(COOKIE), ...sessionFields(n) })
  }
  return sessions
}

/**
 * A generator of distinct 32-character sids (the length of express-session's uid-safe ids):
 * a random base per generator and a counter, so that making one costs next to nothing.
 */
function sidGenerator() {
  const base = crypto.randomBytes(15).toString('base64url').slice(0, 20)
  let counter = 0
  return () => base + (counter++).toString(36).padStart(12, '0')
}

/** Bytes of the session as plaintext JSON, as connect-redis stores it by default. */
function jsonBytes(session) {
  return Buffer.byteLength(JSON.stringify(session))
}

module.exports = { COOKIE, makeSessions, sessionFields, sidGenerator, jsonBytes }
