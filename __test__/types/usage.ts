// Compiled with `tsc --strict --noEmit` in CI: the public typings must accept real usage and
// reject misuse (the @ts-expect-error lines fail the build if they ever type-check).
import express from 'express'
import session from 'express-session'
import { RedisStore, sign, unsign } from '../..'

const store = new RedisStore({
  secret: ['new secret', 'old secret'],
  url: 'redis://127.0.0.1:6379/0',
  prefix: 'session:',
  ttl: (sess) => (sess.userId ? 86400 : 600),
  encryptionKeys: [Buffer.alloc(32), 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='],
  commandTimeout: 2000,
  busyPollMicros: 50,
  logger: console,
})

const app = express()
app.use(session({ store, secret: 'new secret', resave: false, saveUninitialized: false }))

app.post('/login', async (req, res) => {
  await store.saveSession(req, 'user-42')
  const userId: string | undefined = req.session.userId
  res.json({ userId })
})

async function gateway(rawCookie: string | undefined): Promise<string | null> {
  const sess = await store.getSessionFromRawCookie(rawCookie)
  const fromReq: string | null = await store.getUserIdFromCookie({ headers: { cookie: 'a=b' } })
  return sess?.userId ?? fromReq
}

store.get('sid', (err, sess) => {
  if (!err && sess) console.log(sess.cookie.maxAge)
})
const ids: Promise<string[]> = store.ids()
const count: Promise<number> = store.length()
store.on('disconnect', (reason: string) => console.log(reason))
store.on('error', (err) => console.log(err.code))

async function support(): Promise<number> {
  const found = await store.inspect('sid')
  const stats = await store.scanStats((sofar) => console.log(sofar.sessions))
  const counters = store.stats()
  return found.kind === 'session' ? found.ttlMs : stats.sessions + counters.hits
}

async function rotate(): Promise<number> {
  let total = 0
  let counted = '0'
  do {
    const page = await store.countPage(counted)
    total += page.keys
    counted = page.cursor
  } while (counted !== '0')

  let cursor = '0'
  let rotated = 0
  do {
    const page = await store.rotatePage(cursor)
    rotated += page.rotated + page.changedMeanwhile
    cursor = page.cursor
    const key: string = page.keyId
    void [key, page.scanned, page.alreadyCurrent, page.undecryptable]
  } while (cursor !== '0')
  return total - rotated
}

async function everywhere(io: import('socket.io').Server): Promise<number> {
  const indexed = new RedisStore({ secret: 's', userIndex: true, legacyPrefix: 'sess:' })
  const stop: () => void = indexed.closeSocketsOnSessionEnd(io)
  const off = indexed.onSessionEnd(({ sid, reason }) => console.log(sid, reason === 'expired'))
  const ready: boolean = await indexed.sessionEndsReady()
  const sessions = await indexed.listUserSessions('user-42')
  const first: Date | undefined = sessions[0]?.lastWrite
  const ended: number = await indexed.destroyUserSessions(42)
  stop()
  off()
  void [ready, first, indexed.stats().legacy]
  return ended
}

const signed: string = sign('value', 'secret')
const unsigned: string | false = unsign(signed, ['a', 'b'])

// @ts-expect-error: the secret is required
new RedisStore({})
// @ts-expect-error: ttl is seconds or a function
new RedisStore({ secret: 's', ttl: '1 day' })
// @ts-expect-error: a cursor is the string a page returned
store.rotatePage(0)
// @ts-expect-error: a session end has no `userId`
store.onSessionEnd((end) => end.userId)
// @ts-expect-error: userId is a string
store.saveSession({ session: {} as session.Session }, 42)

void [gateway, support, rotate, everywhere, ids, count, unsigned, store.close()]
