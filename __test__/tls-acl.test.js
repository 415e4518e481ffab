'use strict'

// rediss:// with a CA and a client certificate, ACL users with passwords in the URL, the
// database number in the URL, and a Unix socket.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { once } = require('node:events')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { RedisStore } = require('..')
const { RedisServer } = require('./helpers/redis-server')
const { RedisTlsServer, aclUser } = require('./helpers/redis-tls')

const session = (extra) => ({ cookie: { originalMaxAge: null }, ...extra })

describe('TLS', () => {
  let server

  before(async () => {
    server = await RedisTlsServer.start({ requireClientCert: true })
  })

  after(async () => {
    await server?.stop()
  })

  it('connects with the CA and a client certificate, and works', async () => {
    const { pem } = server.certs
    const tls = { ca: pem.ca, cert: pem.clientCert, key: Buffer.from(pem.clientKey) }
    const store = new RedisStore({ url: server.url, secret: 's', tls })
    await once(store, 'connect')
    await store.set('tls-sid', session({ v: 1 }))
    assert.equal((await store.get('tls-sid')).v, 1)
    await store.close()
  })

  it('without the client certificate the server refuses: calls fail, nothing hangs', async () => {
    const tls = { ca: server.certs.pem.ca }
    const store = new RedisStore({ url: server.url, secret: 's', tls, commandTimeout: 500 })
    await assert.rejects(store.get('tls-sid'), (err) => err.code === 'ERR_REDIS')
    await store.close()
  })

  it('bad TLS options name the option', () => {
    const cases = [
      { url: server.url, tls: 'yes' },
      { url: server.url, tls: { cert: server.certs.pem.clientCert } },
      { url: 'redis://127.0.0.1:1', tls: { ca: server.certs.pem.ca } },
      { url: server.url, tls: { ca: 'not a certificate' } },
    ]
    for (const options of cases) {
      assert.throws(() => new RedisStore({ secret: 's', ...options }), (err) => {
        assert.equal(err.code, 'ERR_INVALID_OPTION', err.message)
        assert.match(err.message, /`tls`/)
        return true
      })
    }
  })
})

describe('ACL users and databases', () => {
  let server

  before(async () => {
    server = await RedisServer.start()
  })

  after(async () => {
    await server?.stop()
  })

  it('an ACL user with a password in the URL works; a wrong password fails', async () => {
    const url = await aclUser(server.url, 'campus', 'p4ss-w0rd')
    assert.match(url, /campus:p4ss-w0rd@/)
    const store = new RedisStore({ url, secret: 's' })
    await once(store, 'connect')
    await store.set('acl-sid', session({ v: 2 }))
    assert.equal((await store.get('acl-sid')).v, 2)
    await store.close()

    const wrong = url.replace('p4ss-w0rd', 'wrong')
    const denied = new RedisStore({ url: wrong, secret: 's', commandTimeout: 500 })
    await assert.rejects(denied.get('acl-sid'), (err) => {
      assert.equal(err.code, 'ERR_REDIS')
      assert.ok(!err.message.includes('wrong'), err.message)
      return true
    })
    await denied.close()
  })

  it('the database number in the URL is used', async () => {
    const store = new RedisStore({ url: `${server.url}/3`, secret: 's' })
    await once(store, 'connect')
    await store.set('db-sid', session({ v: 3 }))
    const raw = await server.client()
    await raw.select(3)
    assert.equal(await raw.exists('session:db-sid'), 1)
    await raw.select(0)
    assert.equal(await raw.exists('session:db-sid'), 0)
    await raw.quit()
    await store.close()
  })
})

describe('Unix socket', () => {
  let server
  let socket

  before(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'srs-socket-'))
    socket = path.join(dir, 'redis.sock')
    server = await RedisServer.start(['--unixsocket', socket, '--unixsocketperm', '700'])
  })

  after(async () => {
    await server?.stop()
    fs.rmSync(path.dirname(socket), { recursive: true, force: true })
  })

  it('a unix:// URL connects over the socket, and works', async () => {
    const store = new RedisStore({ url: `unix://${socket}`, secret: 's' })
    await once(store, 'connect')
    await store.set('unix-sid', session({ v: 4 }))
    assert.equal((await store.get('unix-sid')).v, 4)

    const raw = await server.client()
    const clients = await raw.sendCommand(['CLIENT', 'LIST'])
    assert.ok(clients.includes(socket), `no client on the socket:\n${clients}`)
    assert.equal(await raw.exists('session:unix-sid'), 1)
    await raw.quit()
    await store.close()
  })
})
