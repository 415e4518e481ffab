'use strict'

/**
 * TLS and ACL for tests: certificates made with `openssl` (a CA, a server certificate for
 * 127.0.0.1 and localhost, a client certificate), a throwaway `redis-server` that only speaks
 * TLS, and an ACL user on any server.
 */

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const tls = require('node:tls')
const { createClient } = require('redis')
const { spawnRedis, stopChild } = require('./redis-admin')
const { answersPing, freePort, waitUntil } = require('./redis-server')

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
const DAYS = ['-days', '2']

/**
 * Writes ca.crt, server.crt/key (SAN IP:127.0.0.1, DNS:localhost) and client.crt/key into
 * `dir`. Returns `{ files, pem }`, both keyed ca, serverCert, serverKey, clientCert, clientKey.
 */
function makeCertificates(dir) {
  fs.mkdirSync(dir, { recursive: true })
  const file = (name) => path.join(dir, name)

  openssl(['req', '-x509', '-new', ...EC_KEY, ...DAYS, '-subj', '/CN=srs-test-ca',
    '-keyout', file('ca.key'), '-out', file('ca.crt')])

  signed(dir, 'server', '/CN=localhost',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
  signed(dir, 'client', '/CN=srs-test-client', 'extendedKeyUsage=clientAuth\n')

  const files = {
    ca: file('ca.crt'),
    serverCert: file('server.crt'),
    serverKey: file('server.key'),
    clientCert: file('client.crt'),
    clientKey: file('client.key'),
  }
  const pem = Object.fromEntries(Object.entries(files).map(([key, name]) =>
    [key, fs.readFileSync(name, 'utf8')]))
  return { files, pem }
}

/** A key and a certificate `<name>.key`/`<name>.crt` signed by the CA in `dir`. */
function signed(dir, name, subject, extensions) {
  const file = (suffix) => path.join(dir, `${name}.${suffix}`)
  fs.writeFileSync(file('ext'), extensions)
  openssl(['req', '-new', ...EC_KEY, '-subj', subject, '-keyout', file('key'),
    '-out', file('csr')])
  openssl(['x509', '-req', '-in', file('csr'), '-CA', path.join(dir, 'ca.crt'),
    '-CAkey', path.join(dir, 'ca.key'), '-CAcreateserial', ...DAYS,
    '-extfile', file('ext'), '-out', file('crt')])
}

function openssl(args) {
  execFileSync('openssl', args, { stdio: 'pipe' })
}

/** A throwaway `redis-server` listening only with TLS (`--port 0 --tls-port`). */
class RedisTlsServer {
  constructor(port, requireClientCert) {
    this.port = port
    this.url = `rediss://127.0.0.1:${port}`
    this.requireClientCert = requireClientCert
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'srs-tls-'))
    this.certs = null
    this.files = null
    this.process = null
  }

  /**
   * Starts a TLS-only server with fresh certificates. With `requireClientCert`, clients must
   * present a certificate signed by the CA (`--tls-auth-clients yes`), otherwise it's optional.
   */
  static async start({ requireClientCert = false } = {}) {
    const server = new RedisTlsServer(await freePort(), requireClientCert)

    try {
      server.certs = makeCertificates(path.join(server.dir, 'certs'))
      server.files = server.certs.files
      const { files } = server
      server.process = spawnRedis(['--port', '0', '--tls-port', String(server.port),
        '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', server.dir,
        '--tls-cert-file', files.serverCert, '--tls-key-file', files.serverKey,
        '--tls-ca-cert-file', files.ca,
        '--tls-auth-clients', requireClientCert ? 'yes' : 'optional'])
      await waitUntil(() => server.#answers(), 5000,
        `TLS redis-server on ${server.port} did not start`)
    } catch (err) {
      await server.stop()
      throw err
    }

    return server
  }

  /**
   * node-redis client options for this server: the CA, plus the client certificate unless
   * `clientCert` is false.
   */
  clientOptions({ clientCert = true } = {}) {
    const { pem } = this.certs
    const socket = { tls: true, ca: pem.ca, reconnectStrategy: false, connectTimeout: 2000 }
    if (clientCert) Object.assign(socket, { cert: pem.clientCert, key: pem.clientKey })
    return { url: this.url, RESP: 2, socket }
  }

  /** A connected node-redis client (see `clientOptions`). */
  async client(options) {
    const client = createClient(this.clientOptions(options))
    client.on('error', () => {})
    await client.connect()
    return client
  }

  /** Stops the server and removes its directory (certificates included). */
  async stop() {
    await stopChild(this.process)
    this.process = null
    fs.rmSync(this.dir, { recursive: true, force: true })
  }

  /** Whether a TLS PING (with the client certificate) gets a PONG. */
  #answers() {
    const { pem } = this.certs
    const socket = tls.connect({ host: '127.0.0.1', port: this.port, ca: pem.ca,
      cert: pem.clientCert, key: pem.clientKey })
    return answersPing(socket, 'secureConnect')
  }
}

/**
 * Creates (or resets) ACL user `name` with `password` and every permission on the server at
 * `serverUrl`; `options` are extra node-redis options (e.g. TLS ones). Returns `serverUrl`
 * with the user's credentials in it.
 */
async function aclUser(serverUrl, name, password, options = {}) {
  const client = createClient({ RESP: 2, ...options, url: serverUrl })
  client.on('error', () => {})
  await client.connect()

  try {
    await client.sendCommand(['ACL', 'SETUSER', name, 'reset', 'on', `>${password}`, '~*',
      '&*', '+@all'])
  } finally {
    client.destroy()
  }

  const url = new URL(serverUrl)
  url.username = name
  url.password = password
  return url.toString().replace(/\/$/, '')
}

module.exports = { RedisTlsServer, aclUser, makeCertificates }
